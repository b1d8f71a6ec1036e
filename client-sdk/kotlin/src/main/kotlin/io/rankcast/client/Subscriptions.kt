// SPDX-License-Identifier: Apache-2.0
// Live lists: the surfaces the application collects, kept across reconnects. One wire
// subscription per surface, shared by every collector of that surface; it is unsubscribed when
// the last collector goes. On every new connection each surface is subscribed again and the
// server answers with its current list. Lists are state (PROTOCOL.md section 5): per surface a
// StateFlow holds the newest list, and a list with a version lower than the one delivered on
// the same connection and options is dropped. Runs on the client's confined dispatcher only.
package io.rankcast.client

import kotlinx.coroutines.flow.MutableStateFlow

internal class Surface(val name: String, var message: Map<String, Any?>) {
    val state = MutableStateFlow<RecsList?>(null)
    var collectors = 0
    var version: Long? = null // newest delivered on this connection and these options
}

internal class Subscriptions(
    private val send: (Map<String, Any?>) -> Unit,
    private val isOpen: () -> Boolean,
    private val limits: () -> Limits,
) {
    private val surfaces = LinkedHashMap<String, Surface>()
    var staleDropped = 0L
        private set

    val count: Int get() = surfaces.size

    fun latest(surface: String): RecsList? = surfaces[surface]?.state?.value

    fun holds(surface: String): Boolean = surfaces.containsKey(surface)

    /** A collector starts: a new surface, or new options for a held one, is sent now if open. */
    fun add(surface: String, message: Map<String, Any?>): Surface {
        val held = surfaces[surface]
        if (held == null && surfaces.size >= limits().maxSubscriptions) {
            throw ClientException(ClientErrorKind.LIMIT_EXCEEDED, "more than max_subscriptions ${limits().maxSubscriptions} surfaces")
        }
        val s = held ?: Surface(surface, message).also { surfaces[surface] = it }
        s.collectors++
        if (held == null || held.message != message) {
            s.message = message
            s.version = null // a new set of options: versions start afresh
            if (isOpen()) send(message)
        }
        return s
    }

    /** A collector stopped; the last one unsubscribes the surface. */
    fun remove(s: Surface) {
        if (--s.collectors > 0 || surfaces[s.name] !== s) return
        surfaces.remove(s.name)
        if (isOpen()) send(Outgoing.unsubscribe(s.name))
    }

    /** A new connection said `welcome`: every surface again, versions start afresh. */
    fun resubscribeAll() {
        for (s in surfaces.values) {
            s.version = null
            send(s.message)
        }
    }

    /** Sends `surface`'s subscription again as it is (its compact list did not apply). */
    fun resubscribe(surface: String) {
        val s = surfaces[surface] ?: return
        if (!isOpen()) return
        s.version = null // the answer is by definition the current list
        send(s.message)
    }

    /** Delivers a `recs`; false when it was dropped (unknown surface, or older than the last). */
    fun deliver(list: RecsList): Boolean {
        val s = surfaces[list.surface] ?: return false
        val v = s.version
        if (v != null && list.version < v) {
            staleDropped++
            return false
        }
        s.version = list.version
        s.state.value = list
        return true
    }
}
