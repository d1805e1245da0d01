"""Where each element of each operand lives in L1 and in the output buffer.

Written once with only ``+ * >> &`` so the same functions compute addresses on Python ints (the packer,
the simulator, the testbench) and on Amaranth values (the RTL's address generators).

L1 is a memory of lines of ``W = scan_bytes`` bytes:
- dense A: row i, scan word w (elements w*W .. w*W+W-1) is line ``a_addr + i*nw + w``;
- bitmask A: mask word g = i*nw + w (W bits) is byte slice ``(g & 7) * W/8`` of line ``a_addr + (g >> 3)``;
  row i's nonzero values start at byte ``ptr[i]`` of the values region at line ``a_vals``; ``ptr`` is an
  array of M+1 little-endian uint32 at line ``a_ptr``;
- B: row k is ``nbl = ceil(N/W)`` lines from ``b_addr + k*nbl``; lane block j (L bytes) is segment
  ``j & (W/L - 1)`` of line ``+ (j >> log2(W/L))``;
- C: job (i, j) writes output line ``c_addr + i*nbj + j`` with ``nbj = ceil(N/L)``.
"""
from __future__ import annotations

from dataclasses import dataclass

PTR_BYTES = 4  # bitmask row offsets and CSR row pointers are uint32
INDEX_BYTES = 2  # CSR column indices are uint16 (K < 65536)
MASK_WORDS_PER_LINE = 8  # a line of W bytes holds 8 mask words of W bits
# a line of W bytes holds the N:M indices of 2**(3 - bits_log2) scan words (W indices of 2**bits_log2 bits each)
NM_META_SLOT_BITS = 3


def log2(x: int) -> int:
    assert x > 0 and x & (x - 1) == 0, x
    return x.bit_length() - 1


@dataclass(frozen=True)
class Layout:
    line_bytes: int  # W
    lanes: int       # L

    @classmethod
    def of(cls, cfg) -> Layout:
        return cls(cfg.line_bytes, cfg.engine.lanes)

    # -- sizes ------------------------------------------------------------------------------------
    def words(self, k):
        """Scan words (= dense A lines) per row of A."""
        return (k + self.line_bytes - 1) >> log2(self.line_bytes)

    def b_row_lines(self, n):
        return (n + self.line_bytes - 1) >> log2(self.line_bytes)

    def blocks(self, n):
        """Lane blocks per row of C (jobs per row)."""
        return (n + self.lanes - 1) >> log2(self.lanes)

    def nm_kept(self, k, n_log2, m_log2):
        """Kept values per row of an N:M matrix: ceil(K/M) groups of N."""
        return ((k + (1 << m_log2) - 1) >> m_log2) << n_log2

    def causal_blocks(self, i, m, n):
        """Lane blocks of row i that hold any column j <= i + (n - m) (a causal mask aligned to the end)."""
        return self.diagonal_block(i + n - m) + 1

    def diagonal_block(self, column):
        """The lane block that holds ``column`` (a causal row's last kept column, i + n - m)."""
        return column >> log2(self.lanes)

    def mask_lines(self, m, k):
        return (m * self.words(k) + MASK_WORDS_PER_LINE - 1) >> log2(MASK_WORDS_PER_LINE)

    def lines_for_bytes(self, nbytes):
        return (nbytes + self.line_bytes - 1) >> log2(self.line_bytes)

    # -- addresses ---------------------------------------------------------------------------------
    def a_dense_line(self, a_addr, row_base_word, w):
        """``row_base_word = i * nw``; kept separate so the RTL computes it once per job."""
        return a_addr + row_base_word + w

    def mask_word_line(self, a_addr, g):
        return a_addr + (g >> log2(MASK_WORDS_PER_LINE))

    def mask_word_slot(self, g):
        return g & (MASK_WORDS_PER_LINE - 1)

    @staticmethod
    def nm_meta_bits_log2(m_log2, minimum=min):
        """log2 of the index width of an N:M kept value: M = 2, 4, 8, 16 -> 1, 2, 4, 4 bits. ``minimum``: the RTL
        passes a two-input min of Amaranth values (a ``Mux``)."""
        return minimum(m_log2 - 1, 2)

    def nm_meta_line(self, a_meta, g, bits_log2):
        return a_meta + (g >> _unsigned(NM_META_SLOT_BITS - bits_log2))

    def nm_meta_slot(self, g, bits_log2):
        return g & ((1 << _unsigned(NM_META_SLOT_BITS - bits_log2)) - 1)

    def nm_k(self, position, n_log2, m_log2, index):
        """K index of kept value ``position`` (in its row) whose in-group index is ``index``."""
        return ((position >> n_log2) << m_log2) + index

    def csr_index_line(self, a_meta, p):
        return a_meta + (p >> log2(self.line_bytes // INDEX_BYTES))

    def csr_index_slot(self, p):
        return p & (self.line_bytes // INDEX_BYTES - 1)

    def ptr_line(self, a_ptr, i):
        return a_ptr + (i >> log2(self.line_bytes // PTR_BYTES))

    def ptr_slot(self, i):
        return i & (self.line_bytes // PTR_BYTES - 1)

    def byte_line(self, base_line, byte):
        return base_line + (byte >> log2(self.line_bytes))

    def byte_slot(self, byte):
        return byte & (self.line_bytes - 1)

    def b_line(self, b_addr, row_base_line, j):
        """``row_base_line = k * nbl``."""
        return b_addr + row_base_line + (j >> log2(self.line_bytes // self.lanes))

    def b_slot(self, j):
        return j & (self.line_bytes // self.lanes - 1)

    def c_line(self, c_addr, i_times_nbj, j):
        return c_addr + i_times_nbj + j


def _unsigned(x):
    """Shift amounts must be unsigned in Amaranth; ints pass through."""
    return x if isinstance(x, int) else x.as_unsigned()
