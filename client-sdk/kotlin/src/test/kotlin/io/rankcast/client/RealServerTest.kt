// SPDX-License-Identifier: Apache-2.0
// End to end against the real rankcast binary over ws://, in both subprotocols: welcome,
// subscribe() as a Flow (newest wins, re-ranked with cause = the tracked event's id), track()
// suspending until the ack, batching, every event kind, filters, a final refusal as a typed
// ServerException, invalid input refused before sending, and two collectors of one surface.
package io.rankcast.client

import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.EnumSource

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RealServerTest {
    // A closed catalog, so an unknown item is refused with 4012.
    private val server = RankcastProcess(extraArgs = listOf("--catalog-open", "false"))

    @BeforeAll
    fun start() {
        server.start()
    }

    @AfterAll
    fun stop() = server.stop()

    @ParameterizedTest
    @EnumSource(Encoding::class)
    fun `subscribe, track, lists re-ranked with cause = the tracked event id`(enc: Encoding) = runBlocking<Unit> {
        val client = RankcastClient(testOptions(server.wsUrl, enc, Repo.uniqueUser("e2e")))
        try {
            val open = withTimeout(5000) { client.state.first { it == ConnectionState.OPEN } }
            assertEquals(ConnectionState.OPEN, open)
            val welcome = client.welcome!!
            assertEquals(1, welcome.v)
            assertEquals(100, welcome.limits.maxBatch)

            val first = withTimeout(5000) { client.subscribe("home", SubscribeOptions(k = 5)).first() }
            assertEquals("home", first.surface)
            assertNull(first.cause, "the list sent on subscribe has no cause")
            assertEquals(5, first.items.size)
            for (it in first.items) {
                assertTrue(it.src in setOf("covisit", "content", "trending", "popular", "explore"), it.src)
                assertTrue(it.why.isNotEmpty())
                assertTrue(it.reason?.code?.isNotEmpty() == true, "every item carries its reason as data: $it")
            }

            // A collector that stays: the newest list of the surface, across events.
            val lists = mutableListOf<RecsList>()
            val collecting = launch { client.subscribe("home", SubscribeOptions(k = 5)).collect { lists += it } }
            // Click recommended items until one re-ranks the list; the list says which event caused it.
            var caused: RecsList? = null
            for (item in first.items.map { it.item } + Repo.items("kitchen").take(5)) {
                val id = client.track(Event(EventKind.CLICK, item = item, surface = "home"))
                caused = runCatching { withTimeout(1500) { waitUntil("list") { lists.any { it.cause == id } }; lists.first { it.cause == id } } }.getOrNull()
                if (caused != null) break
            }
            assertTrue(caused != null, "a click re-ranked the list with cause = its id")
            assertTrue(caused!!.version > first.version, "a newer version")
            val versions = lists.map { it.version }
            assertEquals(versions.sorted(), versions, "versions never go back")
            collecting.cancel()

            // Three events tracked together go out as one `events` message and are all acked.
            val before = client.stats().sentMessages
            val ids = first.items.drop(1).take(3).map { item ->
                async { client.track(Event(EventKind.VIEW, item = item.item, surface = "home")) }
            }.awaitAll()
            assertEquals(3, ids.toSet().size)
            assertEquals(1, client.stats().sentMessages - before, "one batch")

            // Every kind is accepted.
            val items = first.items.map { it.item }
            listOf(
                Event(EventKind.SEARCH, query = "heart"),
                Event(EventKind.RATING, item = items[0], value = 4.0),
                Event(EventKind.DWELL, item = items[0], value = 5400.0),
                Event(EventKind.CART, item = items[1], value = 2.0),
                Event(EventKind.PURCHASE, item = items[1]),
                Event(EventKind.IMPRESSION, item = items[2], surface = "home"),
                Event(EventKind.DISMISS, item = items[2]),
            ).map { async { client.track(it) } }.awaitAll()
            assertEquals(0, client.stats().queued)

            // A final refusal: typed, with the code and the event's id, and the queue moves on.
            val err = assertThrows<ServerException> { runBlocking { client.track(Event(EventKind.VIEW, item = "no-such-item-42", id = "e-unknown-1")) } }
            assertEquals(4012, err.code)
            assertEquals("unknown_item", err.codeName)
            assertEquals("e-unknown-1", err.eventId)
            assertEquals(0, client.stats().queued)

            // Invalid input is refused before anything is sent.
            val bad = assertThrows<ClientException> { runBlocking { client.track(Event(EventKind.RATING, item = items[0], value = 9.0)) } }
            assertEquals(ClientErrorKind.INVALID_ARGUMENT, bad.kind)
            assertThrows<ClientException> { client.subscribe("Not A Surface") }
        } finally {
            client.closeAndJoin()
        }
    }

    @ParameterizedTest
    @EnumSource(Encoding::class)
    fun `filtered lists and two clients of one user in step`(enc: Encoding) = runBlocking<Unit> {
        val user = Repo.uniqueUser("pair")
        val a = RankcastClient(testOptions(server.wsUrl, enc, user))
        val b = RankcastClient(testOptions(server.wsUrl, enc, user))
        try {
            val kitchen = withTimeout(5000) { a.subscribe("pdp", SubscribeOptions(k = 4, category = "kitchen", priceMax = 10.0)).first() }
            assertEquals(4, kitchen.items.size)
            for (it in kitchen.items) {
                assertEquals("kitchen", it.category)
                assertTrue(it.price!! <= 10.0)
            }
            // b's event re-ranks a's list (one session per user).
            val seen = mutableListOf<RecsList>()
            val job = launch { a.subscribe("home", SubscribeOptions(k = 5)).collect { seen += it } }
            waitUntil("a's first list") { seen.isNotEmpty() }
            withTimeout(5000) { b.state.first { it == ConnectionState.OPEN } }
            var id: String? = null
            for (item in Repo.items("christmas").take(10)) {
                val tracked = b.track(Event(EventKind.CLICK, item = item))
                if (runCatching { waitUntil("a list caused by b", 1500) { seen.any { it.cause == tracked } } }.isSuccess) {
                    id = tracked
                    break
                }
            }
            assertTrue(id != null, "an event of b re-ranked a's list")
            job.cancel()
        } finally {
            a.closeAndJoin()
            b.closeAndJoin()
        }
    }

    @ParameterizedTest
    @EnumSource(Encoding::class)
    fun `a slow collector gets the newest list, not a backlog`(enc: Encoding) = runBlocking<Unit> {
        val client = RankcastClient(testOptions(server.wsUrl, enc, Repo.uniqueUser("slow")))
        try {
            val fast = mutableListOf<RecsList>()
            val slow = mutableListOf<RecsList>()
            val fastJob = launch { client.subscribe("home").collect { fast += it } }
            val slowJob = launch {
                client.subscribe("home").collect {
                    slow += it
                    kotlinx.coroutines.delay(400)
                }
            }
            waitUntil("the first list") { fast.isNotEmpty() && slow.isNotEmpty() }
            for (item in Repo.items("candles-lights").take(20)) client.track(Event(EventKind.VIEW, item = item))
            val newest = client.latest("home")!!
            waitUntil("the slow collector reaches the newest list", 5000) { slow.last() == newest }
            assertTrue(fast.size >= 5, "the events re-ranked the list several times (${fast.size})")
            assertTrue(slow.size < fast.size, "the slow collector skipped intermediate lists (${slow.size} of ${fast.size})")
            assertEquals(slow.map { it.version }.sorted(), slow.map { it.version })
            // A late collector starts from the current list at once.
            assertEquals(newest, withTimeout(1000) { client.subscribe("home").first() })
            fastJob.cancel()
            slowJob.cancel()
        } finally {
            client.closeAndJoin()
        }
    }

    @ParameterizedTest
    @EnumSource(Encoding::class)
    fun `a compact subscription delivers the same whole lists as a plain one`(enc: Encoding) = runBlocking<Unit> {
        val user = Repo.uniqueUser("compact")
        val plain = RankcastClient(testOptions(server.wsUrl, enc, user))
        val compact = RankcastClient(testOptions(server.wsUrl, enc, user))
        try {
            withTimeout(5000) {
                plain.state.first { it == ConnectionState.OPEN }
                compact.state.first { it == ConnectionState.OPEN }
            }
            val plainLists = java.util.concurrent.ConcurrentHashMap<Long, RecsList>()
            val compactLists = java.util.concurrent.CopyOnWriteArrayList<RecsList>()
            val a = launch { plain.subscribe("home", SubscribeOptions(k = 20)).collect { plainLists[it.version] = it } }
            val b = launch { compact.subscribe("home", SubscribeOptions(k = 20, compact = true)).collect { compactLists += it } }
            waitUntil("the first lists") { plainLists.isNotEmpty() && compactLists.isNotEmpty() }
            for (i in 0 until 8) {
                // A click on an item shown leaves the list (repeat "never"): each re-ranks it.
                val shown = compactLists.last().items
                val id = plain.track(Event(EventKind.CLICK, item = shown[(i * 5) % shown.size].item, surface = "home"))
                withTimeout(5000) { waitUntil("the lists of click $i") { compactLists.any { it.cause == id } && plainLists.values.any { it.cause == id } } }
            }
            var compared = 0
            for (list in compactLists) {
                val whole = plainLists[list.version] ?: continue
                assertEquals(whole, list, "version ${list.version}")
                compared++
            }
            assertTrue(compared >= 8, "$compared lists compared")
            assertTrue(compactLists.all { l -> l.items.size == 20 && l.items.all { it.reason != null && it.name != null } })
            a.cancel()
            b.cancel()
        } finally {
            plain.close()
            compact.close()
        }
    }
}
