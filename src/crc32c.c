/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the
 * checksum of a version-2 message file (q-spool(5), MESSAGE FILES).
 * Slicing-by-8 tables, or the SSE4.2 crc32 instruction when the CPU has
 * it (asked at run time).  q_crc32c(q_crc32c(0, a), b) is the CRC of a
 * followed by b.
 */
#include "config.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "q.h"

#define POLY 0x82f63b78u

static uint32_t table[8][256];
static int have_hw = -1;        /* -1: not asked yet */

/* The tables: 8 KiB written, only on a CPU without the instruction. */
static void
make_tables(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
			    table[0][table[t - 1][i] & 0xff];
}

static void
init(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	unsigned int eax, ebx, ecx = 0, edx;

	/* cpuid itself, not __builtin_cpu_supports: that links in libgcc's
	 * CPU table, filled at every start of every tool (three page
	 * faults, more than a CRC of a small message costs) */
	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		ecx = 0;
	/* QSPOOL_CRC32C_SOFT: the tables, to test them on any CPU */
	have_hw = (ecx & bit_SSE4_2) && !getenv("QSPOOL_CRC32C_SOFT") ? 1 : 0;
#else
	have_hw = 0;
#endif
	if (!have_hw)
		make_tables();
}

static uint32_t
crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
	while (n >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= c;
		c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		    table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
		    table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		    table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2")))
static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64 = c;

	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t
q_crc32c(uint32_t crc, const void *buf, size_t n)
{
	uint32_t c = ~crc;

	if (have_hw == -1)
		init();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (have_hw == 1)
		return ~crc_hw(c, buf, n);
#endif
	return ~crc_sw(c, buf, n);
}
