// SPDX-License-Identifier: Apache-2.0
// Connection resilience against the real binary: the server restarting mid-session (a crash,
// and a graceful drain: `drain` then close 1001) with the client resuming (lists come back,
// events tracked while down are acknowledged after), the offline queue persisted in a file and
// sent by the next client, reconnectNow() bypassing the backoff, and no leaked sockets or
// threads over many reconnects.
package io.rankcast.client

import java.io.File
import java.nio.file.Files
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.CsvSource

class ReconnectTest {
    @ParameterizedTest
    @CsvSource("JSON", "MSGPACK")
    fun `an issued anonymous id is presented again after a restart, a made-up one is replaced after 4013`(enc: Encoding) = runBlocking<Unit> {
        val dir = Files.createTempDirectory("rankcast-kt-anon").toFile()
        val node = RankcastProcess(extraArgs = listOf("--anonymous-ids", "signed", "--data-dir", dir.path)).start()
        val signed = Regex("^anon-[0-9a-f]{24}\\.[0-9a-f]{32}$")
        try {
            val client = RankcastClient(testOptions(node.wsUrl, enc, user = null))
            try {
                waitUntil("open") { client.state.value == ConnectionState.OPEN }
                val issued = client.user!!
                assertTrue(signed.matches(issued), issued)
                val welcomes = client.stats().welcomes
                node.stop(kill = true)
                node.start()
                waitUntil("reopened", 10_000) { client.stats().welcomes > welcomes && client.state.value == ConnectionState.OPEN }
                assertEquals(issued, client.welcome!!.user, "the server took the issued id back: the same visitor")
            } finally {
                client.close()
            }
            val stale = RankcastClient(testOptions(node.wsUrl, enc, user = "anon-made-up-by-the-app").copy(reconnect = Backoff(60_000, 60_000)), connectNow = false)
            try {
                val events = mutableListOf<ClientEvent>()
                // Collecting before the client connects: the 4013 comes before any welcome.
                val watcher = launch(start = CoroutineStart.UNDISPATCHED) { stale.events.collect { events += it } }
                stale.connect()
                // The reconnect after 4013 does not wait out the minute of backoff.
                waitUntil("open under a fresh id") { stale.state.value == ConnectionState.OPEN }
                assertTrue(signed.matches(stale.user!!), stale.user)
                assertEquals(stale.user, stale.welcome!!.user)
                assertTrue(events.any { it is ClientEvent.Error && (it.error as? ServerException)?.code == 4013 }, events.toString())
                watcher.cancel()
            } finally {
                stale.close()
            }
        } finally {
            node.stop(kill = true)
            dir.deleteRecursively()
        }
    }

    @ParameterizedTest
    @CsvSource("JSON,crash", "JSON,drain", "MSGPACK,crash", "MSGPACK,drain")
    fun `the server restarts mid-session, the client resumes, lists come back, queued events are acked`(enc: Encoding, how: String) = runBlocking<Unit> {
        val node = RankcastProcess(extraArgs = listOf("--drain-ms", "500")).start()
        val client = RankcastClient(testOptions(node.wsUrl, enc, Repo.uniqueUser("restart-$how")))
        try {
            val events = mutableListOf<ClientEvent>()
            val watcher = launch { client.events.collect { events += it } }
            val home = mutableListOf<RecsList>()
            val pdp = mutableListOf<RecsList>()
            val j1 = launch { client.subscribe("home", SubscribeOptions(k = 5)).collect { home += it } }
            val j2 = launch { client.subscribe("pdp", SubscribeOptions(k = 3, category = "home-decor")).collect { pdp += it } }
            waitUntil("the first lists") { home.isNotEmpty() && pdp.isNotEmpty() }
            val welcomes = client.stats().welcomes
            val item = home[0].items[0].item

            // Events tracked just before the end: on a crash this server may never ack them.
            val early = listOf(async { client.track(Event(EventKind.VIEW, item = item)) }, async { client.track(Event(EventKind.CART, item = item)) })
            node.stop(kill = how == "crash")
            waitUntil("reconnecting") { events.any { it is ClientEvent.Reconnecting } }
            if (how == "drain") {
                val drain = events.filterIsInstance<ClientEvent.Drain>().single()
                assertEquals("shutdown", drain.drain.reason)
                assertEquals(1001, events.filterIsInstance<ClientEvent.Reconnecting>().first().code)
            }
            // While the server is down, events wait in the queue.
            val offline = listOf(
                async { client.track(Event(EventKind.CLICK, item = item, surface = "home")) },
                async { client.track(Event(EventKind.SEARCH, query = "lantern")) },
            )
            waitUntil("queued offline") { client.stats().queued >= 2 }
            val homeBefore = home.size
            val pdpBefore = pdp.size
            node.start()
            val ids = withTimeout(10_000) { (early + offline).awaitAll() }
            assertEquals(4, ids.toSet().size)
            assertTrue(client.stats().welcomes > welcomes)
            waitUntil("lists after the resume") { home.size > homeBefore || pdp.size > pdpBefore || client.stats().welcomes > welcomes }
            waitUntil("pdp again") { pdp.size > pdpBefore }
            for (it in pdp.last().items) assertEquals("home-decor", it.category, "the filter was sent again")
            assertEquals(0, client.stats().queued)
            j1.cancel()
            j2.cancel()
            watcher.cancel()
        } finally {
            client.closeAndJoin()
            node.stop(kill = true)
        }
    }

    @Test
    fun `events tracked offline are kept in the file store and sent by the next client`() = runBlocking<Unit> {
        val dir = Files.createTempDirectory("rankcast-kt-store").toFile()
        val file = File(dir, "queue.jsonl")
        val node = RankcastProcess(extraArgs = listOf("--catalog-open", "false"))
        val user = Repo.uniqueUser("offline")
        // Nothing listens on the port yet: the first client never connects.
        val first = RankcastClient(testOptions(node.wsUrl, Encoding.MSGPACK, user, FileEventStore(file)))
        val items = Repo.items("kitchen").take(3)
        val ids = items.map { first.send(Event(EventKind.VIEW, item = it)) } + first.send(Event(EventKind.VIEW, item = "not-in-catalog"))
        waitUntil("queued") { first.stats().queued == 4 }
        first.closeAndJoin()
        assertEquals(4, FileEventStore(file).load().size, "the events outlived their client")

        node.start()
        try {
            val refused = mutableListOf<ServerException>()
            val second = RankcastClient(testOptions(node.wsUrl, Encoding.MSGPACK, user, FileEventStore(file)))
            val watcher = launch { second.events.filterIsInstance<ClientEvent.Error>().collect { (it.error as? ServerException)?.let { e -> refused += e } } }
            waitUntil("the stored events acknowledged or refused", 10_000) { second.stats().queued == 0 }
            assertEquals(3, second.stats().acked, "the three catalog items were acknowledged")
            assertEquals(listOf(ids[3]), refused.filter { it.code == 4012 }.map { it.eventId }, "the unknown item was refused for good")
            second.closeAndJoin()
            watcher.cancel()
            assertEquals(0, FileEventStore(file).load().size, "acknowledged events left the store")
        } finally {
            node.stop()
        }
    }

    @Test
    fun `reconnectNow connects at once, bypassing the backoff`() = runBlocking<Unit> {
        val node = RankcastProcess().start()
        // A backoff of up to 31 years: only reconnectNow() can bring the client back quickly.
        // Full jitter plans a delay under 10 s with odds of 1 in 10^8 (with an hour's ceiling, as
        // before, 1 in 360: a CI run failed on it).
        val opts = testOptions(node.wsUrl, Encoding.JSON, Repo.uniqueUser("now"))
            .copy(reconnect = Backoff(1_000_000_000_000, 1_000_000_000_000))
        val client = RankcastClient(opts)
        try {
            withTimeout(5000) { client.state.first { it == ConnectionState.OPEN } }
            val lost = async(start = kotlinx.coroutines.CoroutineStart.UNDISPATCHED) { client.events.filterIsInstance<ClientEvent.Reconnecting>().first() }
            node.stop(kill = true)
            val planned = withTimeout(5000) { lost.await() }
            assertTrue(planned.delayMs > 10_000, "the backoff planned ${planned.delayMs} ms")
            node.start()
            kotlinx.coroutines.delay(300)
            assertEquals(ConnectionState.RECONNECTING, client.state.value, "still waiting out the backoff")
            val t0 = System.nanoTime()
            client.reconnectNow()
            withTimeout(3000) { client.state.first { it == ConnectionState.OPEN } }
            val ms = (System.nanoTime() - t0) / 1_000_000
            assertTrue(ms < 3000, "open $ms ms after reconnectNow")
            // On a live connection it drops the socket and makes a new one.
            val welcomes = client.stats().welcomes
            client.reconnectNow()
            waitUntil("a new welcome") { client.stats().welcomes == welcomes + 1 && client.state.value == ConnectionState.OPEN }
            assertEquals(client.user, client.welcome!!.user)
        } finally {
            client.closeAndJoin()
            node.stop()
        }
    }

    @Test
    fun `no leaked sockets or threads over many reconnects`() = runBlocking<Unit> {
        val node = RankcastProcess().start()
        try {
            val baselineSockets = openSocketFds()
            val baselineThreads = Thread.activeCount()
            val client = RankcastClient(testOptions(node.wsUrl, Encoding.MSGPACK, Repo.uniqueUser("leak")))
            val lists = mutableListOf<RecsList>()
            val job = launch { client.subscribe("home").collect { lists += it } }
            withTimeout(5000) { client.state.first { it == ConnectionState.OPEN } }
            val rounds = 200
            var maxSockets = 0
            var maxThreads = 0
            repeat(rounds) { i ->
                val w = client.stats().welcomes
                client.reconnectNow()
                waitUntil("welcome $i") { client.stats().welcomes > w && client.state.value == ConnectionState.OPEN }
                if (i % 5 == 0) client.track(Event(EventKind.VIEW, item = Repo.items("kitchen")[i % 10]))
                maxSockets = maxOf(maxSockets, openSocketFds() - baselineSockets)
                maxThreads = maxOf(maxThreads, Thread.activeCount() - baselineThreads)
            }
            val stats = client.stats()
            println("leak check: $rounds reconnects, ${stats.welcomes} welcomes, max extra socket fds $maxSockets, max extra threads $maxThreads, open sockets ${stats.openSockets}")
            assertTrue(stats.welcomes >= rounds + 1L)
            assertTrue(stats.openSockets <= 1, "open sockets ${stats.openSockets}")
            assertTrue(maxSockets <= 4, "socket fds grew by $maxSockets")
            assertTrue(maxThreads <= 12, "threads grew by $maxThreads")
            waitUntil("the list after the last reconnect") { lists.size > rounds / 2 }
            job.cancel()
            client.closeAndJoin()
            waitUntil("sockets closed after close()") { openSocketFds() <= baselineSockets }
            assertEquals(0, client.stats().openSockets)
        } finally {
            node.stop()
        }
    }
}
