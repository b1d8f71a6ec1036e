// SPDX-License-Identifier: Apache-2.0
// The two encodings of PROTOCOL.md section 1: one message per WebSocket message, a MessagePack
// map in a binary frame (rankcast.v1.msgpack) or a JSON object in a text frame
// (rankcast.v1.json). Pure functions, no I/O: the vectors test drives them directly.
//
// A message is a plain value tree: Map<String, Any?> (insertion-ordered), List<Any?>, String,
// Long, Double, Boolean and null. Integers are Long on both sides; a Double that holds an
// integer within +-2^53 is written as an integer, as the protocol's reference encoder does
// (a rating of 4 goes out as 4, not 4.0).
package io.rankcast.client

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.booleanOrNull
import org.msgpack.core.MessagePack
import org.msgpack.core.MessagePacker
import org.msgpack.core.MessageUnpacker
import org.msgpack.value.ValueType

/** The protocol's encodings and their subprotocol names. */
enum class Encoding(val subprotocol: String) {
    MSGPACK("rankcast.v1.msgpack"),
    JSON("rankcast.v1.json"),
}

/** One encoded message: text for JSON, bytes for MessagePack. */
sealed class Frame {
    abstract val size: Int

    data class Text(val text: String) : Frame() {
        override val size: Int get() = text.toByteArray(Charsets.UTF_8).size
    }

    class Binary(val bytes: ByteArray) : Frame() {
        override val size: Int get() = bytes.size
    }
}

/** Encodes and decodes protocol messages; stateless. */
object Codec {
    private const val MAX_SAFE_INT = 9007199254740992.0 // 2^53

    /** Encodes one message (a map with a string `type`). */
    fun encode(message: Map<String, Any?>, encoding: Encoding): Frame = when (encoding) {
        Encoding.JSON -> Frame.Text(toJson(message).toString())
        Encoding.MSGPACK -> Frame.Binary(encodeMsgpack(message))
    }

    fun encodeMsgpack(value: Any?): ByteArray {
        val packer = MessagePack.newDefaultBufferPacker()
        packer.use {
            pack(it, value)
            return it.toByteArray()
        }
    }

    /**
     * Decodes one received message. A frame of the wrong kind for the encoding, bytes that do
     * not decode, trailing bytes, or a value that is not a map with a string `type` throw
     * [ClientException] of kind PROTOCOL.
     */
    fun decode(frame: Frame, encoding: Encoding): Map<String, Any?> {
        val value = try {
            when {
                encoding == Encoding.JSON && frame is Frame.Text -> fromJson(Json.parseToJsonElement(frame.text))
                encoding == Encoding.MSGPACK && frame is Frame.Binary -> decodeMsgpack(frame.bytes)
                encoding == Encoding.JSON -> throw IllegalArgumentException("binary frame on the JSON subprotocol")
                else -> throw IllegalArgumentException("text frame on the MessagePack subprotocol")
            }
        } catch (e: ClientException) {
            throw e
        } catch (e: Exception) {
            throw ClientException(ClientErrorKind.PROTOCOL, "cannot decode a server message: ${e.message}", e)
        }
        if (value !is Map<*, *>) throw ClientException(ClientErrorKind.PROTOCOL, "a server message is not a map")
        if (value["type"] !is String) throw ClientException(ClientErrorKind.PROTOCOL, "a server message has no string `type`")
        @Suppress("UNCHECKED_CAST")
        return value as Map<String, Any?>
    }

    /** Decodes exactly one MessagePack value; trailing bytes are an error. */
    fun decodeMsgpack(bytes: ByteArray): Any? {
        MessagePack.newDefaultUnpacker(bytes).use { u ->
            val v = unpack(u)
            require(!u.hasNext()) { "trailing bytes after the message" }
            return v
        }
    }

    private fun pack(p: MessagePacker, v: Any?) {
        when (v) {
            null -> p.packNil()
            is String -> p.packString(v)
            is Boolean -> p.packBoolean(v)
            is Int -> p.packLong(v.toLong())
            is Long -> p.packLong(v)
            is Double -> if (isSafeInteger(v)) p.packLong(v.toLong()) else p.packDouble(v)
            is Float -> pack(p, v.toDouble())
            is Map<*, *> -> {
                p.packMapHeader(v.size)
                for ((k, item) in v) {
                    p.packString(k as String)
                    pack(p, item)
                }
            }
            is List<*> -> {
                p.packArrayHeader(v.size)
                for (item in v) pack(p, item)
            }
            else -> throw IllegalArgumentException("cannot encode ${v::class.simpleName}")
        }
    }

    private fun unpack(u: MessageUnpacker): Any? {
        val format = u.nextFormat
        return when (format.valueType) {
            ValueType.NIL -> u.unpackNil().let { null }
            ValueType.BOOLEAN -> u.unpackBoolean()
            ValueType.INTEGER -> u.unpackLong() // a uint64 past Long.MAX_VALUE throws: not in this protocol
            ValueType.FLOAT -> u.unpackDouble()
            ValueType.STRING -> u.unpackString()
            ValueType.BINARY -> ByteArray(u.unpackBinaryHeader()).also { u.readPayload(it) }
            ValueType.ARRAY -> List(u.unpackArrayHeader()) { unpack(u) }
            ValueType.MAP -> {
                val n = u.unpackMapHeader()
                val m = LinkedHashMap<String, Any?>(n * 2)
                repeat(n) {
                    val key = unpack(u) as? String ?: throw IllegalArgumentException("a map key that is not a string")
                    m[key] = unpack(u)
                }
                m
            }
            ValueType.EXTENSION -> {
                val ext = u.unpackExtensionTypeHeader()
                u.skipValue(0)
                ByteArray(ext.length).also { u.readPayload(it) }
            }
            null -> throw IllegalArgumentException("unknown MessagePack format")
        }
    }

    private fun isSafeInteger(v: Double) = v == Math.rint(v) && !v.isInfinite() && Math.abs(v) <= MAX_SAFE_INT &&
        !(v == 0.0 && 1.0 / v < 0) // -0.0 stays a float

    fun toJson(v: Any?): JsonElement = when (v) {
        null -> JsonNull
        is String -> JsonPrimitive(v)
        is Boolean -> JsonPrimitive(v)
        is Int -> JsonPrimitive(v.toLong())
        is Long -> JsonPrimitive(v)
        is Double -> if (isSafeInteger(v)) JsonPrimitive(v.toLong()) else JsonPrimitive(v)
        is Float -> toJson(v.toDouble())
        is Map<*, *> -> JsonObject(v.entries.associate { (k, item) -> (k as String) to toJson(item) })
        is List<*> -> JsonArray(v.map { toJson(it) })
        else -> throw IllegalArgumentException("cannot encode ${v::class.simpleName}")
    }

    fun fromJson(e: JsonElement): Any? = when (e) {
        is JsonNull -> null
        is JsonObject -> LinkedHashMap<String, Any?>().also { m -> for ((k, v) in e) m[k] = fromJson(v) }
        is JsonArray -> e.map { fromJson(it) }
        is JsonPrimitive -> when {
            e.isString -> e.content
            e.booleanOrNull != null -> e.booleanOrNull
            else -> jsonNumber(e.content)
        }
    }

    /** A JSON number: Long when written without fraction or exponent (and in range), else Double. */
    private fun jsonNumber(text: String): Any {
        if (text.none { it == '.' || it == 'e' || it == 'E' }) text.toLongOrNull()?.let { return it }
        return text.toDouble()
    }
}
