// SPDX-License-Identifier: Apache-2.0
// The persistent side of the at-least-once queue: every tracked event is written here before it
// is sent and removed when the server acknowledges it (or refuses it for good), so events
// tracked offline, or not yet acknowledged when the process died, go out from the next client
// that opens the same store. Pluggable: implement EventStore over Room, DataStore or SQLite on
// Android; FileEventStore is the default.
package io.rankcast.client

import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import java.io.OutputStreamWriter
import java.io.Writer
import kotlinx.serialization.json.Json

/** One queued event: its id and its wire fields (PROTOCOL.md `event`, without `type`). */
data class StoredEvent(val id: String, val fields: Map<String, Any?>)

/**
 * Where unacknowledged events are kept. Called from one coroutine at a time (the client's own),
 * never concurrently; a call may block briefly (it runs on an I/O dispatcher). A throw is
 * reported as ClientException(STORAGE) and the event stays queued in memory.
 */
interface EventStore {
    /** The events stored earlier, oldest first. Called once, when the client starts. */
    fun load(): List<StoredEvent>

    /** Stores an event (a new id). */
    fun add(event: StoredEvent)

    /** Forgets an event; an unknown id is ignored. */
    fun remove(id: String)

    /** Releases the store (the client is closed). */
    fun close() {}
}

/** Keeps events in memory only: they do not survive the process. */
class MemoryEventStore : EventStore {
    private val events = LinkedHashMap<String, StoredEvent>()
    override fun load(): List<StoredEvent> = events.values.toList()
    override fun add(event: StoredEvent) {
        events[event.id] = event
    }

    override fun remove(id: String) {
        events.remove(id)
    }
}

/**
 * An append-only journal of JSON lines, `{"add":{fields}}` and `{"del":"id"}`, replayed at
 * load and rewritten (temp file, then rename) when removed records outnumber live ones. A torn
 * last line, from a crash mid-write, is skipped. With `sync` every record is forced to disk
 * before the call returns (an fsync per event: safe across power loss, slower); without it a
 * record is in the OS's hands, which survives the app being killed.
 */
class FileEventStore(val file: File, private val sync: Boolean = false) : EventStore {
    private val live = LinkedHashMap<String, StoredEvent>()
    private var dead = 0
    private var out: FileOutputStream? = null
    private var writer: Writer? = null

    override fun load(): List<StoredEvent> {
        live.clear()
        dead = 0
        if (file.exists()) {
            file.forEachLine(Charsets.UTF_8) { line -> replay(line) }
        }
        compact()
        return live.values.toList()
    }

    private fun replay(line: String) {
        if (line.isBlank()) return
        val record = try {
            Codec.fromJson(Json.parseToJsonElement(line)) as? Map<*, *>
        } catch (_: Exception) {
            null // a torn write: the event it held was never acknowledged as stored
        } ?: return
        val add = record["add"] as? Map<*, *>
        val del = record["del"] as? String
        if (add != null) {
            val id = add["id"] as? String ?: return
            @Suppress("UNCHECKED_CAST")
            live[id] = StoredEvent(id, add as Map<String, Any?>)
        } else if (del != null) {
            live.remove(del)
        }
    }

    override fun add(event: StoredEvent) {
        live[event.id] = event
        append(Codec.toJson(mapOf("add" to event.fields)).toString())
    }

    override fun remove(id: String) {
        if (live.remove(id) == null) return
        dead++
        append(Codec.toJson(mapOf("del" to id)).toString())
        if (dead > 256 && dead > 2 * live.size) compact()
    }

    private fun append(line: String) {
        val w = writer ?: openAppend()
        w.write(line)
        w.write("\n")
        w.flush()
        if (sync) out?.fd?.sync()
    }

    private fun openAppend(): Writer {
        file.parentFile?.mkdirs()
        val o = FileOutputStream(file, true)
        out = o
        return OutputStreamWriter(o, Charsets.UTF_8).also { writer = it }
    }

    /** Rewrites the journal with the live events only. */
    private fun compact() {
        closeWriter()
        file.parentFile?.mkdirs()
        val tmp = File(file.path + ".tmp")
        FileOutputStream(tmp).use { o ->
            val w = OutputStreamWriter(o, Charsets.UTF_8)
            for (e in live.values) w.write(Codec.toJson(mapOf("add" to e.fields)).toString() + "\n")
            w.flush()
            o.fd.sync()
        }
        if (!tmp.renameTo(file)) throw IOException("cannot rename $tmp to $file")
        dead = 0
    }

    private fun closeWriter() {
        writer?.close()
        writer = null
        out = null
    }

    override fun close() = closeWriter()
}
