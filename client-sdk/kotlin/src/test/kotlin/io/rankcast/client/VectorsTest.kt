// SPDX-License-Identifier: Apache-2.0
// The shared protocol vectors (proto/vectors/vectors.json) against the SDK's codec, builders and
// readers: every valid client->server vector is produced by the SDK's builders from the API's
// typed input (decoding to the same value in both encodings, byte for byte where the vector is
// canonical); every server->client vector decodes in both encodings to the same value and is
// read; every invalid client->server vector is refused before sending, by the builders' checks
// or by the API's types (a field the data classes have no place for, a value of the wrong type).
package io.rankcast.client

import kotlinx.serialization.json.Json
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class VectorsTest {
    private class Inexpressible(why: String) : Exception(why)

    @Suppress("UNCHECKED_CAST")
    private val vectors = Codec.fromJson(Json.parseToJsonElement(Repo.vectors.readText())) as List<Map<String, Any?>>

    private fun hex(b: ByteArray) = b.joinToString("") { "%02x".format(it) }
    private fun fromHex(h: String) = ByteArray(h.length / 2) { h.substring(2 * it, 2 * it + 2).toInt(16).toByte() }

    /** The vector's value: from its JSON, else from its MessagePack. Throws when it does not decode. */
    private fun valueOf(v: Map<String, Any?>): Any? =
        (v["json"] as String?)?.let { Codec.fromJson(Json.parseToJsonElement(it)) } ?: Codec.decodeMsgpack(fromHex(v["msgpack_hex"] as String))

    private inline fun <reified T> field(m: Map<String, Any?>, name: String): T? {
        if (!m.containsKey(name)) return null
        val v = m[name]
        return v as? T ?: throw Inexpressible("$name: ${v?.javaClass?.simpleName} is not a ${T::class.simpleName}")
    }

    private fun onlyKeys(m: Map<String, Any?>, vararg allowed: String) {
        val extra = m.keys - allowed.toSet()
        if (extra.isNotEmpty()) throw Inexpressible("the API has no field $extra")
    }

    private fun number(m: Map<String, Any?>, name: String): Double? = when (val v = m[name]) {
        null -> if (m.containsKey(name)) throw Inexpressible("$name is null") else null
        is Long -> v.toDouble()
        is Double -> v
        else -> throw Inexpressible("$name is not a number")
    }

    private fun event(m: Map<String, Any?>): Event {
        onlyKeys(m, "id", "kind", "item", "value", "query", "surface", "ts_ms")
        val kindName = field<String>(m, "kind")
        return Event(
            kind = kindName?.let { EventKind.of(it) ?: throw Inexpressible("no EventKind $it") } ?: throw Inexpressible("no kind"),
            item = field<String>(m, "item"), value = number(m, "value"), query = field<String>(m, "query"),
            surface = field<String>(m, "surface"), tsMs = field<Long>(m, "ts_ms"), id = field<String>(m, "id") ?: throw Inexpressible("no id"),
        )
    }

    /** Builds the wire message through the SDK from the typed input that means it. */
    private fun buildWithSdk(value: Any?): Map<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        val m = value as? Map<String, Any?> ?: throw Inexpressible("not a map")
        val f = m - "type"
        return when (m["type"]) {
            "hello" -> {
                onlyKeys(f, "v", "token", "user", "device", "locale", "tz_offset_min", "consent")
                if (field<Long>(f, "v") != 1L) throw Inexpressible("the SDK always sends v: 1")
                val device = field<String>(f, "device")?.let { d -> Device.entries.firstOrNull { it.wire == d } ?: throw Inexpressible("no Device $d") }
                Outgoing.hello(field<String>(f, "token"), field<String>(f, "user"), device, field<String>(f, "locale"),
                    field<Long>(f, "tz_offset_min")?.let { if (it in Int.MIN_VALUE..Int.MAX_VALUE) it.toInt() else throw Inexpressible("tz") },
                    field<Boolean>(f, "consent"))
            }
            "event" -> Outgoing.event(Outgoing.eventFields(event(f)))
            "events" -> {
                onlyKeys(f, "events")
                val list = field<List<*>>(f, "events") ?: throw Inexpressible("no events")
                if (list.isEmpty() || list.size > 100) throw Inexpressible("batches are formed by the SDK itself (1..max_batch)")
                @Suppress("UNCHECKED_CAST")
                Outgoing.events(list.map { Outgoing.eventFields(event(it as? Map<String, Any?> ?: throw Inexpressible("not a map"))) })
            }
            "subscribe" -> {
                onlyKeys(f, "surface", "k", "category", "price_min", "price_max", "repeat", "compact")
                val repeat = field<String>(f, "repeat")?.let { r -> Repeat.entries.firstOrNull { it.wire == r } ?: throw Inexpressible("no Repeat $r") }
                val k = field<Long>(f, "k")?.let { if (it in -1000..1000) it.toInt() else throw Inexpressible("k") }
                Outgoing.subscribe(field<String>(f, "surface") ?: throw Inexpressible("no surface"),
                    SubscribeOptions(k, field<String>(f, "category"), number(f, "price_min"), number(f, "price_max"), repeat, field<Boolean>(f, "compact")))
            }
            "unsubscribe" -> {
                onlyKeys(f, "surface")
                Outgoing.unsubscribe(field<String>(f, "surface") ?: throw Inexpressible("no surface"))
            }
            "ping" -> {
                onlyKeys(f, "t")
                Outgoing.ping(number(f, "t"))
            }
            "auth" -> {
                onlyKeys(f, "token")
                Outgoing.auth(field<String>(f, "token") ?: throw Inexpressible("no token"))
            }
            else -> throw Inexpressible("the SDK never sends type ${m["type"]}")
        }
    }

    private fun canonical(h: String) = hex(Codec.encodeMsgpack(Codec.decodeMsgpack(fromHex(h)))) == h

    @Test
    fun `every valid c2s vector is produced by the SDK, byte-identical where canonical`() {
        val valid = vectors.filter { it["dir"] == "c2s" && it["error"] == null }
        assertTrue(valid.size >= 20)
        var identical = 0
        for (v in valid) {
            val name = v["name"]
            val built = try {
                buildWithSdk(valueOf(v))
            } catch (e: Inexpressible) {
                throw AssertionError("$name: the SDK cannot build a valid message: ${e.message}")
            }
            var same = true
            (v["json"] as String?)?.let { j ->
                val ours = (Codec.encode(built, Encoding.JSON) as Frame.Text).text
                assertEquals(Codec.fromJson(Json.parseToJsonElement(j)), Codec.fromJson(Json.parseToJsonElement(ours)), "$name: JSON value")
                if (ours != j) same = false
            }
            (v["msgpack_hex"] as String?)?.let { h ->
                val ours = (Codec.encode(built, Encoding.MSGPACK) as Frame.Binary).bytes
                assertEquals(Codec.decodeMsgpack(fromHex(h)), Codec.decodeMsgpack(ours), "$name: MessagePack value")
                if (hex(ours) != h) {
                    same = false
                    assertTrue(!canonical(h) || built.keys.toList() != (Codec.decodeMsgpack(fromHex(h)) as Map<*, *>).keys.toList(),
                        "$name: MessagePack differs though the vector is canonical and in page order: ${hex(ours)} vs $h")
                }
            }
            if (same) identical++
        }
        println("vectors: ${valid.size} valid c2s, $identical byte-identical in every encoding given")
        assertTrue(identical >= valid.size - 6, "$identical of ${valid.size} identical")
    }

    @Test
    fun `every s2c vector decodes to the same value in both encodings and is read`() {
        val s2c = vectors.filter { it["dir"] == "s2c" }
        assertTrue(s2c.size >= 10)
        for (v in s2c) {
            val name = v["name"]
            val fromJson = (v["json"] as String?)?.let { Codec.decode(Frame.Text(it), Encoding.JSON) }
            val fromMsgpack = (v["msgpack_hex"] as String?)?.let { Codec.decode(Frame.Binary(fromHex(it)), Encoding.MSGPACK) }
            if (fromJson != null && fromMsgpack != null) assertEquals(fromJson, fromMsgpack, "$name: both encodings")
            val msg = Reader.read(fromJson ?: fromMsgpack!!)
            assertNotNull(msg, "$name: read")
            // An error names what it refuses: the message's type, a surface, a ping's t.
            if (msg is Incoming.Error) {
                val value = fromJson ?: fromMsgpack!!
                assertEquals(value["about"], msg.about, "$name: about")
                assertEquals(value["surface"], msg.surface, "$name: surface")
                assertEquals((value["t"] as? Number)?.toDouble(), msg.t, "$name: t")
            }
        }
        // Structured reasons, in both encodings, as the vectors give them.
        fun items(name: String, enc: Encoding): List<RecItem> {
            val v = s2c.first { it["name"] == name }
            val frame = if (enc == Encoding.JSON) Frame.Text(v["json"] as String) else Frame.Binary(fromHex(v["msgpack_hex"] as String))
            return (Reader.read(Codec.decode(frame, enc)) as Incoming.Recs).list.items
        }
        for (enc in listOf(Encoding.JSON, Encoding.MSGPACK)) {
            val caused = items("recs caused by an event", enc)
            assertEquals(Reason("co_visited", item = "85123A", itemName = "White Hanging Heart T-Light Holder"), caused[0].reason)
            assertEquals(
                Reason("similar", item = "85123A", itemName = "White Hanging Heart T-Light Holder", category = "candles-lights", categoryName = "Candles & lights"),
                caused[1].reason,
            )
            val onSubscribe = items("recs on subscribe", enc)
            assertEquals(Reason("trending_context", segment = "mobile"), onSubscribe[0].reason)
            assertEquals(Reason("trending_locale", locale = "en-GB"), onSubscribe[2].reason)
            val again = items("recs with an item of the session again", enc)
            assertEquals(Reason("repeat", kind = "view", ageS = 150), again[0].reason)
            assertEquals(Reason("repeat"), again[2].reason)
            assertEquals(null, again.last().reason)
        }
        // Leniently: a bad part is left out; no string code, no reason.
        assertEquals(Reason("repeat"), Reader.reason(mapOf("code" to "repeat", "kind" to 3L, "age_s" to -1L, "later" to "x")))
        assertEquals(Reason("repeat"), Reader.reason(mapOf("code" to "repeat", "age_s" to 1.5)))
        for (bad in listOf(mapOf("kind" to "view"), mapOf("code" to 7L), "repeat", null)) assertEquals(null, Reader.reason(bad), "$bad")

        // The wrong frame kind for the encoding is a protocol error.
        val e = assertThrows<ClientException> { Codec.decode(Frame.Text("{\"type\":\"ack\",\"ids\":[]}"), Encoding.MSGPACK) }
        assertEquals(ClientErrorKind.PROTOCOL, e.kind)
    }

    @Test
    fun `the recs_delta vectors applied in turn are whole lists, in both encodings`() {
        for (enc in listOf(Encoding.JSON, Encoding.MSGPACK)) {
            fun delta(name: String): Delta {
                val v = vectors.first { it["name"] == name }
                val frame = if (enc == Encoding.JSON) Frame.Text(v["json"] as String) else Frame.Binary(fromHex(v["msgpack_hex"] as String))
                return (Reader.read(Codec.decode(frame, enc)) as Incoming.RecsDelta).delta
            }
            val lists = CompactLists()
            // Not held yet: refused.
            assertThrows<ClientException> { lists.apply(delta("recs_delta changes")) }
            val first = lists.apply(delta("recs_delta whole list (compact, from nothing)"))!!
            assertEquals(listOf("22423", "85123A", "x-unknown"), first.items.map { it.item })
            assertEquals(
                RecItem("22423", 0.91, "trending", "Trending on mobile", "REGENCY CAKESTAND 3 TIER", "kitchen", 12.75, Reason("trending_context", segment = "mobile")),
                first.items[0],
            )
            assertEquals(RecItem("x-unknown", 0.125, "explore", "New", reason = Reason("new_item")), first.items[2])
            val second = lists.apply(delta("recs_delta changes"))!!
            assertEquals("e-0001", second.cause)
            assertEquals(listOf("84406B" to 1.75, "85123A" to 0.5, "22423" to 0.25), second.items.map { it.item to it.score })
            assertEquals("REGENCY CAKESTAND 3 TIER", second.items[2].name, "details kept from the first list")
            assertEquals(Reason("co_visited", item = "85123A", itemName = "White Hanging Heart T-Light Holder"), second.items[0].reason)
            assertEquals(listOf("84406B", "85123A", "22423"), lists.apply(delta("recs_delta with no change of order"))!!.items.map { it.item })
            // A base not held, a reason never defined: refused; a new connection starts from nothing.
            assertThrows<ClientException> { lists.apply(delta("recs_delta changes")) }
            assertThrows<ClientException> { lists.apply(delta("recs_delta whole list (compact, from nothing)").copy(r = listOf(99, 1, 2))) }
            // A surface subscribed again: changes of the old subscription still in flight are dropped.
            lists.forget("home")
            assertEquals(null, lists.apply(delta("recs_delta with no change of order")))
            lists.reset()
            assertThrows<ClientException> { lists.apply(delta("recs_delta with no change of order")) }
        }
        // Malformed where applying relies on it.
        val base = Codec.fromJson(Json.parseToJsonElement(vectors.first { it["name"] == "recs_delta changes" }["json"] as String)) as Map<*, *>
        for (broken in listOf(mapOf("scores_e4" to "x"), mapOf("r" to listOf(1L)), mapOf("place" to listOf(listOf(0L))), mapOf("remove" to listOf(1L)))) {
            @Suppress("UNCHECKED_CAST")
            assertThrows<ClientException>("$broken") { Reader.read((base + broken) as Map<String, Any?>) }
        }
    }

    @Test
    fun `every invalid c2s vector is refused before sending`() {
        val invalid = vectors.filter { it["dir"] == "c2s" && it["error"] != null }
        assertTrue(invalid.size >= 20)
        var byChecks = 0
        var byTypes = 0
        var reEncoded = 0
        for (v in invalid) {
            val value = try {
                valueOf(v)
            } catch (_: Exception) {
                byTypes++ // not even a value: the SDK only encodes values it built
                continue
            }
            val built = try {
                buildWithSdk(value)
            } catch (e: ClientException) {
                assertTrue(e.kind == ClientErrorKind.INVALID_ARGUMENT || e.kind == ClientErrorKind.LIMIT_EXCEEDED, "${v["name"]}: ${e.kind}")
                byChecks++
                continue
            } catch (_: Inexpressible) {
                byTypes++
                continue
            }
            // The vector's fault is in its encoding (an integer written 2.0): the SDK sends a different, valid one.
            (v["msgpack_hex"] as String?)?.let { assertTrue(hex((Codec.encode(built, Encoding.MSGPACK) as Frame.Binary).bytes) != it, "${v["name"]}") }
            (v["json"] as String?)?.let { assertTrue((Codec.encode(built, Encoding.JSON) as Frame.Text).text != it, "${v["name"]}") }
            reEncoded++
        }
        println("vectors: ${invalid.size} invalid c2s: $byChecks refused by the builders' checks, $byTypes by the API's types, $reEncoded re-encoded validly")
        assertTrue(byChecks >= 20, "refused by checks: $byChecks")
    }

    @Test
    fun `backoff is full jitter within the cap`() {
        val b = Backoff(100, 1000)
        val r = kotlin.random.Random(7)
        val draws = (0 until 2000).map { b.delayMs(it % 8, r) }
        assertTrue(draws.all { it in 0 until 1000 })
        assertTrue((0 until 200).map { b.delayMs(0, r) }.all { it < 100 })
        assertTrue(draws.filterIndexed { i, _ -> i % 8 >= 4 }.max() > 800, "reaches towards the cap")
    }

    @Test
    fun `the file store replays its journal, skips a torn line and compacts`() {
        val file = java.io.File.createTempFile("rankcast-kt-", ".queue")
        val a = FileEventStore(file)
        a.load()
        repeat(300) { a.add(StoredEvent("e-$it", mapOf("id" to "e-$it", "kind" to "view", "item" to "x", "value" to 2.5))) }
        repeat(290) { a.remove("e-$it") }
        a.close()
        file.appendText("{\"add\":{\"id\":\"torn\",\"ki") // a crash mid-write
        val b = FileEventStore(file).load()
        assertEquals((290 until 300).map { "e-$it" }, b.map { it.id })
        assertEquals(2.5, b[0].fields["value"])
        assertEquals(10, file.readLines().size, "compacted to the live events")
    }
}
