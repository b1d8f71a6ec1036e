/* SPDX-License-Identifier: Apache-2.0 */
/* Whether this build runs under AddressSanitizer (gcc says so with __SANITIZE_ADDRESS__,
 * clang with __has_feature): our own pools and mappings step aside there, so the sanitizer
 * sees every allocation. */
#ifndef RC_SANITIZER_H
#define RC_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define RC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RC_ASAN 1
#endif
#endif
#ifndef RC_ASAN
#define RC_ASAN 0
#endif

#endif
