"""Field tables: a binary format written once, from which the packer, the unpacker and the Amaranth layout
(``hwgen.rtl.signatures.struct_layout``) are all derived. The task descriptor (``isa.py``), the task table
(``task_table.py``) and the page-table entry (``page_table.py``) are field tables. Fields are packed LSB-first
in table order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    doc: str


class FieldTable:
    def __init__(self, name: str, fields: tuple[Field, ...], width: int, word: str = "word"):
        self.name, self.fields, self.width, self.word = name, fields, width, word
        assert sum(f.bits for f in fields) <= width, f"{name}: fields need more than {width} bits"
        assert len({f.name for f in fields}) == len(fields), f"{name}: duplicate field names"
        self.names = tuple(f.name for f in fields)
        self.shift, self.mask, offset = {}, {}, 0
        for f in fields:
            self.shift[f.name], self.mask[f.name] = offset, (1 << f.bits) - 1
            offset += f.bits

    def __iter__(self):
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def bytes(self) -> int:
        return self.width // 8

    @property
    def used(self) -> int:
        """The low bits the fields take; the bits above them are always 0."""
        return sum(f.bits for f in self.fields)

    def pack(self, **values: int) -> int:
        """Fields -> one integer of ``width`` bits. Missing fields are 0."""
        unknown = set(values) - set(self.names)
        if unknown:
            raise ValueError(f"{self.name}: unknown field(s) {sorted(unknown)} (allowed: {', '.join(self.names)})")
        word = 0
        for f in self.fields:
            value = int(values.get(f.name, 0))
            if not 0 <= value <= self.mask[f.name]:
                raise ValueError(f"{self.name}.{f.name}: {value} does not fit in {f.bits} unsigned bits "
                                 f"(allowed: 0..{self.mask[f.name]})")
            word |= value << self.shift[f.name]
        return word

    def unpack(self, word: int) -> dict[str, int]:
        word = int(word)
        if not 0 <= word < (1 << self.width):
            raise ValueError(f"{self.name}: {word} is not a {self.width}-bit {self.word}")
        return {f.name: (word >> self.shift[f.name]) & self.mask[f.name] for f in self.fields}

    def bits(self, name: str) -> int:
        """Width of one field."""
        return next(f.bits for f in self.fields if f.name == name)

    def field(self, words: np.ndarray, name: str) -> np.ndarray:
        """One field of an array of words (vectorised unpack, tables of at most 64 bits), as int64."""
        assert self.width <= 64
        return ((np.asarray(words, dtype=np.uint64) >> np.uint64(self.shift[name]))
                & np.uint64(self.mask[name])).astype(np.int64)
