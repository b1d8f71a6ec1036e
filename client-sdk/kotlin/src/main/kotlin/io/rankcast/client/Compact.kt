// SPDX-License-Identifier: Apache-2.0
// Compact lists (PROTOCOL.md `recs_delta`): what one connection keeps to turn each list's changes
// back into the whole list the application sees. Per connection, the item details and the
// reasons by number the server sent once; per surface, the ids of the list held and its version.
// A new connection starts empty (reset), a surface subscribed again starts from nothing
// (forget); a delta whose base is not the version held cannot be applied and throws (the client
// then subscribes that surface again, and the server answers with the whole list). Runs on the
// client's confined dispatcher only.
package io.rankcast.client

internal class CompactLists {
    private class Held(val version: Long, val items: List<String>)
    private class ReasonDef(val src: String, val why: String, val reason: Reason?)

    private companion object {
        /** What a surface subscribed again holds until its whole list arrives. */
        val AWAITING = Held(-1, emptyList())
    }

    private val details = HashMap<String, Map<*, *>>()
    private val reasons = HashMap<Long, ReasonDef>()
    private val held = HashMap<String, Held>()

    private fun unusable(what: String) = ClientException(ClientErrorKind.PROTOCOL, "recs_delta: $what")

    /** A new connection: the server starts afresh, so does the client. */
    fun reset() {
        details.clear()
        reasons.clear()
        held.clear()
    }

    /** `surface` was subscribed (again) or dropped: its next list comes whole, and until it does,
     * changes still in flight for the old subscription are dropped without a word. */
    fun forget(surface: String) {
        held[surface] = AWAITING
    }

    /** The whole list `d` stands for; null for changes of a subscription replaced since (see
     * [forget]); throws [ClientException] (PROTOCOL) when it does not apply. */
    fun apply(d: Delta): RecsList? {
        val holds = held[d.surface]
        if (holds === AWAITING && d.base != 0L) return null
        if (d.base != 0L && holds?.version != d.base) throw unusable("base ${d.base} not held")
        details.putAll(d.items)
        for ((rid, def) in d.reasons) {
            val (src, why, reason) = Reader.reasonDef(def)
            reasons[rid] = ReasonDef(src, why, reason)
        }
        val removed = d.remove.toHashSet()
        val at = d.place.toMap()
        if (at.size != d.place.size) throw unusable("a position placed twice")
        val placed = at.values.toHashSet()
        val rest = (if (d.base == 0L) emptyList() else holds!!.items).filter { it !in removed && it !in placed }
        val n = d.scores.size
        if (rest.size + at.size != n) throw unusable("places do not fill the list")
        var k = 0
        val ids = List(n) { p -> at[p] ?: rest.getOrNull(k++) ?: throw unusable("position $p empty") }
        val items = ids.mapIndexed { i, id ->
            val why = reasons[d.r[i]] ?: throw unusable("reason ${d.r[i]} undefined")
            val det = details[id].orEmpty()
            RecItem(
                item = id,
                score = d.scores[i],
                src = why.src,
                why = why.why,
                name = det["name"] as? String,
                category = det["category"] as? String,
                price = when (val p = det["price"]) {
                    is Long -> p.toDouble()
                    is Double -> p
                    else -> null
                },
                reason = why.reason,
            )
        }
        held[d.surface] = Held(d.version, ids)
        return RecsList(d.surface, d.version, items, d.cause, d.tookUs, d.variant)
    }
}
