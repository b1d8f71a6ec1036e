package io.rankcast.client
import org.junit.jupiter.api.Test
class PlaceholderTest { @Test fun ok() {} }
