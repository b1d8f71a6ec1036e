// SPDX-License-Identifier: Apache-2.0
// The protocol's messages (PROTOCOL.md section 2) as the application sees them, the builders of
// what the client sends (each field checked against the page before anything is sent: the
// server answers a bad field with 4002 and counts it towards 4008), and the readers of what
// the server sends (lenient where safe: unknown fields are ignored, so a newer server can add
// some; strict where the client relies on a value). Field order follows the page and
// proto/vectors, so a message built here encodes byte for byte like the vectors.
package io.rankcast.client

/** Kinds of interaction (PROTOCOL.md, `event.kind`). */
enum class EventKind(val wire: String) {
    VIEW("view"), CLICK("click"), CART("cart"), PURCHASE("purchase"), RATING("rating"),
    DWELL("dwell"), SEARCH("search"), IMPRESSION("impression"), DISMISS("dismiss");

    companion object {
        fun of(wire: String): EventKind? = entries.firstOrNull { it.wire == wire }
    }
}

/** Device classes of `hello.device`. */
enum class Device(val wire: String) { DESKTOP("desktop"), MOBILE("mobile"), TABLET("tablet"), OTHER("other") }

/** `subscribe.repeat`: whether a list may show items of the session again. */
enum class Repeat(val wire: String) { NEVER("never"), NOT_CURRENT("not_current"), ALLOWED("allowed") }

/**
 * One interaction to track. `id` defaults to a random UUID; `tsMs` to the current time (see
 * [RankcastOptions.timestamps]).
 */
data class Event(
    val kind: EventKind,
    val item: String? = null,
    val value: Double? = null,
    val query: String? = null,
    val surface: String? = null,
    val tsMs: Long? = null,
    val id: String? = null,
)

/** Options of a live list (PROTOCOL.md, `subscribe`). */
data class SubscribeOptions(
    val k: Int? = null,
    val category: String? = null,
    val priceMin: Double? = null,
    val priceMax: Double? = null,
    val repeat: Repeat? = null,
    /**
     * Receive the lists as changes to the list held (PROTOCOL.md `recs_delta`), item details and
     * reasons once per connection: about a tenth of the bytes at k = 20. The flow still gets
     * whole lists, the same as without it.
     */
    val compact: Boolean? = null,
)

/** `welcome.limits`: the limits in force on the connection. */
data class Limits(
    val maxMessageBytes: Int = 65536,
    val maxBatch: Int = 100,
    val maxSubscriptions: Int = 16,
    val maxK: Int = 100,
    val eventsPerSec: Int = 200,
    val eventsBurst: Int = 400,
)

data class Welcome(val v: Int, val session: String, val user: String, val node: String, val serverTimeMs: Long, val limits: Limits)

/**
 * Why an item is in a list, as data (PROTOCOL.md, `recs` item `reason`): a stable [code] and what
 * it refers to, for an app that words reasons itself. Fields that do not apply are null.
 * Codes: `co_visited`, `similar`, `category_affinity`, `trending`, `trending_context`,
 * `trending_locale`, `pinned`, `repeat`, `new_item`, `popular` (a newer server may add codes).
 */
data class Reason(
    val code: String,
    /** `co_visited`, `similar`: the id of the item of the user's session that explains it. */
    val item: String? = null,
    val itemName: String? = null,
    /** As [RecItem.category]; [categoryName] is its display name when the catalog gives one. */
    val category: String? = null,
    val categoryName: String? = null,
    /** `trending_context`: `mobile`, `tablet`, `desktop`, `night`, `morning`, `afternoon`, `evening`. */
    val segment: String? = null,
    /** `trending_locale`: the BCP 47 tag of the user's market, e.g. `de-DE`. */
    val locale: String? = null,
    /** `repeat`: what the user last did with the item (an event kind) and [ageS] seconds ago. */
    val kind: String? = null,
    val ageS: Long? = null,
)

/**
 * One recommended item; `name`, `category`, `price` when the catalog knows the item. [why] is the
 * reason in plain words, [reason] the same as data (null from an older server).
 */
data class RecItem(
    val item: String,
    val score: Double,
    val src: String,
    val why: String,
    val name: String? = null,
    val category: String? = null,
    val price: Double? = null,
    val reason: Reason? = null,
)

/** A compact list's changes as read (PROTOCOL.md `recs_delta`); [CompactLists] applies them. */
internal data class Delta(
    val surface: String,
    val version: Long,
    val base: Long,
    val remove: List<String>,
    val place: List<Pair<Int, String>>,
    val scores: List<Double>,
    val r: List<Long>,
    val items: Map<String, Map<*, *>>,
    val reasons: Map<Long, Map<*, *>>,
    val cause: String?,
    val tookUs: Long,
    val variant: String,
)

/** The current list of a surface (`recs`). `cause` is the id of the event that caused it. */
data class RecsList(
    val surface: String,
    val version: Long,
    val items: List<RecItem>,
    val cause: String?,
    val tookUs: Long,
    val variant: String,
)

/** An application message sent through the server's push API. `data` is the decoded payload. */
data class PushMessage(val id: String, val topic: String, val data: Any?)

data class DrainInfo(val reason: String, val reconnectAfterMs: Long)

data class AuthInfo(val expMs: Long)

/** A server message, read. */
internal sealed class Incoming {
    data class WelcomeMsg(val welcome: Welcome) : Incoming()
    data class Ack(val ids: List<String>) : Incoming()
    data class Recs(val list: RecsList) : Incoming()
    data class RecsDelta(val delta: Delta) : Incoming()
    data class Push(val push: PushMessage) : Incoming()
    data class Pong(val serverTimeMs: Long, val t: Double?) : Incoming()
    data class Error(
        val code: Int,
        val name: String,
        val message: String,
        val id: String?,
        val fatal: Boolean,
        val about: String? = null,
        val surface: String? = null,
        val t: Double? = null,
    ) : Incoming()
    data class Drain(val info: DrainInfo) : Incoming()
    data class AuthOk(val info: AuthInfo) : Incoming()
}

internal object Outgoing {
    const val PROTOCOL_VERSION = 1L
    private val ID_RE = Regex("^[A-Za-z0-9._:@-]{1,64}$")
    private val SURFACE_RE = Regex("^[a-z0-9_-]{1,32}$")
    private const val MAX_SAFE_INT = 9007199254740992L
    private const val MAX_NUMBER = 1e300

    fun invalid(message: String) = ClientException(ClientErrorKind.INVALID_ARGUMENT, message)

    fun isId(s: String?) = s != null && ID_RE.matches(s)
    fun isSurface(s: String?) = s != null && SURFACE_RE.matches(s)

    fun checkId(v: String, what: String): String {
        if (!isId(v)) throw invalid("$what must be 1-64 characters of A-Z a-z 0-9 . _ : @ - (got \"$v\")")
        return v
    }

    fun checkSurface(v: String, what: String = "surface"): String {
        if (!isSurface(v)) throw invalid("$what must be 1-32 characters of a-z 0-9 _ - (got \"$v\")")
        return v
    }

    private fun checkString(v: String, what: String, minBytes: Int, maxBytes: Int): String {
        val n = v.toByteArray(Charsets.UTF_8).size
        if (n < minBytes || n > maxBytes) throw invalid("$what must be $minBytes-$maxBytes bytes of UTF-8 (got $n)")
        return v
    }

    private fun checkNumber(v: Double, what: String, min: Double, max: Double): Double {
        if (!v.isFinite() || v < min || v > max) throw invalid("$what must be a finite number in $min..$max (got $v)")
        return v
    }

    fun hello(token: String?, user: String?, device: Device?, locale: String?, tzOffsetMin: Int?, consent: Boolean?): Map<String, Any?> {
        val m = linkedMapOf<String, Any?>("type" to "hello", "v" to PROTOCOL_VERSION)
        if (!token.isNullOrEmpty()) m["token"] = checkString(token, "token", 1, 4096)
        if (user != null) m["user"] = checkId(user, "user")
        if (device != null) m["device"] = device.wire
        if (locale != null) m["locale"] = checkString(locale, "locale", 1, 16)
        if (tzOffsetMin != null) {
            if (tzOffsetMin !in -840..840) throw invalid("tzOffsetMin must be in -840..840 (got $tzOffsetMin)")
            m["tz_offset_min"] = tzOffsetMin.toLong()
        }
        if (consent != null) m["consent"] = consent
        return m
    }

    /** The wire fields of an event (without `type`), checked; `id` and `tsMs` already filled in. */
    fun eventFields(e: Event): LinkedHashMap<String, Any?> {
        val id = checkId(e.id ?: throw invalid("event.id is required"), "event.id")
        val m = linkedMapOf<String, Any?>("id" to id, "kind" to e.kind.wire)
        if (e.item != null) m["item"] = checkId(e.item, "event.item")
        else if (e.kind != EventKind.SEARCH) throw invalid("event.item is required for kind \"${e.kind.wire}\"")
        if (e.value != null) m["value"] = checkNumber(e.value, "event.value", -MAX_NUMBER, MAX_NUMBER)
        val v = e.value
        when (e.kind) {
            EventKind.RATING -> if (v == null || v < 1 || v > 5) throw invalid("event.value must be 1-5 for kind \"rating\"")
            EventKind.DWELL -> if (v == null || v < 0) throw invalid("event.value (milliseconds) must be >= 0 for kind \"dwell\"")
            EventKind.PURCHASE, EventKind.CART ->
                if (v != null && v <= 0) throw invalid("event.value (quantity) must be > 0 for kind \"${e.kind.wire}\"")
            else -> {}
        }
        if (e.query != null) m["query"] = checkString(e.query, "event.query", 1, 256)
        else if (e.kind == EventKind.SEARCH) throw invalid("event.query is required for kind \"search\"")
        if (e.surface != null) m["surface"] = checkSurface(e.surface, "event.surface")
        if (e.tsMs != null) {
            if (e.tsMs < 0 || e.tsMs > MAX_SAFE_INT) throw invalid("event.tsMs must be in 0..2^53 (got ${e.tsMs})")
            m["ts_ms"] = e.tsMs
        }
        return m
    }

    fun event(fields: Map<String, Any?>): Map<String, Any?> = LinkedHashMap<String, Any?>().apply {
        put("type", "event")
        putAll(fields)
    }

    fun events(list: List<Map<String, Any?>>): Map<String, Any?> = linkedMapOf("type" to "events", "events" to list)

    fun subscribe(surface: String, o: SubscribeOptions, maxK: Int = 100): Map<String, Any?> {
        val m = linkedMapOf<String, Any?>("type" to "subscribe", "surface" to checkSurface(surface))
        if (o.k != null) {
            if (o.k !in 1..100) throw invalid("k must be an integer in 1..100 (got ${o.k})")
            if (o.k > maxK) throw ClientException(ClientErrorKind.LIMIT_EXCEEDED, "k ${o.k} is above the server's max_k $maxK")
            m["k"] = o.k.toLong()
        }
        if (o.category != null) m["category"] = checkString(o.category, "category", 1, 64)
        if (o.priceMin != null) m["price_min"] = checkNumber(o.priceMin, "priceMin", 0.0, MAX_NUMBER)
        if (o.priceMax != null) m["price_max"] = checkNumber(o.priceMax, "priceMax", 0.0, MAX_NUMBER)
        if (o.repeat != null) m["repeat"] = o.repeat.wire
        if (o.compact != null) m["compact"] = o.compact
        return m
    }

    fun unsubscribe(surface: String): Map<String, Any?> = linkedMapOf("type" to "unsubscribe", "surface" to checkSurface(surface))

    fun auth(token: String): Map<String, Any?> = linkedMapOf("type" to "auth", "token" to checkString(token, "token", 1, 4096))

    fun ping(t: Double?): Map<String, Any?> {
        val m = linkedMapOf<String, Any?>("type" to "ping")
        if (t != null) m["t"] = checkNumber(t, "ping t", -MAX_NUMBER, MAX_NUMBER)
        return m
    }
}

internal object Reader {
    private fun bad(what: String) = ClientException(ClientErrorKind.PROTOCOL, "server message: $what")

    private fun str(m: Map<String, Any?>, f: String, type: String) = m[f] as? String ?: throw bad("$type.$f is not a string")
    private fun int(m: Map<String, Any?>, f: String, type: String) = m[f] as? Long ?: throw bad("$type.$f is not an integer")
    private fun num(v: Any?): Double? = when (v) {
        is Long -> v.toDouble()
        is Double -> v
        else -> null
    }

    /** Reads a decoded server message; null for a type this SDK does not know (a newer server). */
    fun read(m: Map<String, Any?>): Incoming? = when (m["type"]) {
        "welcome" -> Incoming.WelcomeMsg(
            Welcome(
                v = int(m, "v", "welcome").toInt(),
                session = str(m, "session", "welcome"),
                user = str(m, "user", "welcome"),
                node = str(m, "node", "welcome"),
                serverTimeMs = int(m, "server_time_ms", "welcome"),
                limits = limits(m["limits"]),
            ),
        )
        "ack" -> {
            val ids = m["ids"] as? List<*> ?: throw bad("ack.ids is not an array")
            Incoming.Ack(ids.map { it as? String ?: throw bad("ack.ids holds a non-string") })
        }
        "recs" -> Incoming.Recs(recs(m))
        "recs_delta" -> Incoming.RecsDelta(delta(m))
        "push" -> Incoming.Push(PushMessage(str(m, "id", "push"), str(m, "topic", "push"), m["data"]))
        "pong" -> Incoming.Pong(int(m, "server_time_ms", "pong"), num(m["t"]))
        "error" -> Incoming.Error(
            code = int(m, "code", "error").toInt(),
            name = m["name"] as? String ?: "",
            message = m["message"] as? String ?: "",
            id = m["id"] as? String,
            fatal = m["fatal"] == true,
            about = m["about"] as? String,
            surface = m["surface"] as? String,
            t = num(m["t"]),
        )
        "drain" -> Incoming.Drain(DrainInfo(m["reason"] as? String ?: "", ((m["reconnect_after_ms"] as? Long) ?: 0L).coerceAtLeast(0)))
        "auth_ok" -> Incoming.AuthOk(AuthInfo(int(m, "exp_ms", "auth_ok")))
        else -> null
    }

    private fun limits(v: Any?): Limits {
        val m = v as? Map<*, *> ?: return Limits()
        // A limit that is missing or nonsensical keeps its default rather than stalling delivery.
        fun get(name: String, default: Int): Int = (m[name] as? Long)?.takeIf { it in 1..Int.MAX_VALUE }?.toInt() ?: default
        val d = Limits()
        return Limits(
            get("max_message_bytes", d.maxMessageBytes), get("max_batch", d.maxBatch), get("max_subscriptions", d.maxSubscriptions),
            get("max_k", d.maxK), get("events_per_sec", d.eventsPerSec), get("events_burst", d.eventsBurst),
        )
    }

    private fun recs(m: Map<String, Any?>): RecsList {
        val items = m["items"] as? List<*> ?: throw bad("recs.items is not an array")
        return RecsList(
            surface = str(m, "surface", "recs"),
            version = int(m, "version", "recs"),
            items = items.map { item(it) },
            cause = m["cause"] as? String,
            tookUs = m["took_us"] as? Long ?: 0,
            variant = m["variant"] as? String ?: "control",
        )
    }

    /** A recs_delta, strict where applying it relies on it (a malformed one throws). */
    private fun delta(m: Map<String, Any?>): Delta {
        fun bad() = bad("recs_delta.remove, place, scores_e4 or r malformed")
        val remove = (m["remove"] ?: emptyList<String>()) as? List<*> ?: throw bad()
        val place = (m["place"] ?: emptyList<Any>()) as? List<*> ?: throw bad()
        val scores = m["scores_e4"] as? List<*> ?: throw bad()
        val r = m["r"] as? List<*> ?: throw bad()
        if (r.size != scores.size) throw bad()
        return Delta(
            surface = str(m, "surface", "recs_delta"),
            version = int(m, "version", "recs_delta"),
            base = int(m, "base", "recs_delta"),
            remove = remove.map { it as? String ?: throw bad() },
            place = place.map {
                val p = it as? List<*> ?: throw bad()
                val pos = p.getOrNull(0) as? Long ?: throw bad()
                if (p.size != 2 || pos !in 0..Int.MAX_VALUE) throw bad()
                pos.toInt() to (p[1] as? String ?: throw bad())
            },
            scores = run {
                // scores_e4: the first, then differences, in ten-thousandths.
                var sum = 0L
                scores.map { sum += it as? Long ?: throw bad(); sum / 10000.0 }
            },
            r = r.map { (it as? Long)?.takeIf { x -> x >= 0 } ?: throw bad() },
            items = (m["items"] as? Map<*, *>).orEmpty().entries.associate { (k, v) -> (k as? String ?: throw bad()) to (v as? Map<*, *>).orEmpty() },
            reasons = (m["reasons"] as? Map<*, *>).orEmpty().entries.associate { (k, v) ->
                ((k as? String)?.takeIf { Regex("0|[1-9][0-9]{0,8}").matches(it) }?.toLong() ?: throw bad()) to (v as? Map<*, *>).orEmpty()
            },
            cause = m["cause"] as? String,
            tookUs = m["took_us"] as? Long ?: 0,
            variant = m["variant"] as? String ?: "control",
        )
    }

    /** A reason definition of a recs_delta, read as an item's reason would be. */
    internal fun reasonDef(d: Map<*, *>): Triple<String, String, Reason?> =
        Triple(d["src"] as? String ?: "", d["why"] as? String ?: "", reason(d["reason"]))

    private fun item(v: Any?): RecItem {
        val it = v as? Map<*, *> ?: throw bad("recs item is not a map")
        return RecItem(
            item = it["item"] as? String ?: throw bad("recs item without an item id"),
            score = num(it["score"]) ?: 0.0,
            src = it["src"] as? String ?: "",
            why = it["why"] as? String ?: "",
            name = it["name"] as? String,
            category = it["category"] as? String,
            price = num(it["price"]),
            reason = reason(it["reason"]),
        )
    }

    /** An item's reason, leniently: none without a string code, and a field of the wrong type is
     * left out (a reason is an extra, never worth refusing a list for). */
    internal fun reason(v: Any?): Reason? {
        val r = v as? Map<*, *> ?: return null
        val code = r["code"] as? String ?: return null
        return Reason(
            code = code,
            item = r["item"] as? String,
            itemName = r["item_name"] as? String,
            category = r["category"] as? String,
            categoryName = r["category_name"] as? String,
            segment = r["segment"] as? String,
            locale = r["locale"] as? String,
            kind = r["kind"] as? String,
            ageS = (r["age_s"] as? Long)?.takeIf { it >= 0 },
        )
    }
}
