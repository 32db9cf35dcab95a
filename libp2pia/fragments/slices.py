"""What a fragment holds: sub-tensor slices and raw byte ranges of the source file.

A :class:`Slice` is a box in a source tensor: planes [p0, p1) (ne2: experts or MLA heads), rows
[r0, r1) (ne1) and columns [c0, c1) (ne0, multiples of the block size). It is re-packed into a
standalone GGUF tensor of shape [c1-c0, r1-r0] (+ [p1-p0] unless ``drop_plane``, which turns one
expert of a 3-D tensor into a 2-D matrix). ``replica`` slices are copies of bytes another fragment
owns (K/V of a split GQA group, per-head norms): reassembly ignores them, so every source byte is
covered exactly once. A :class:`ByteSlice` is a raw byte range (header, opaque data, gaps).
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGMLQuantizationType

from ..gguf.format import block_info
from ..gguf.reader import TensorInfo


@dataclass(frozen=True)
class Slice:
    info: TensorInfo
    r0: int
    r1: int
    c0: int
    c1: int
    p0: int = 0
    p1: int = 1
    drop_plane: bool = False
    replica: bool = False

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def qtype(self) -> GGMLQuantizationType:
        return self.info.qtype

    @property
    def shape(self) -> tuple[int, ...]:
        """GGUF-order shape of the re-packed sub-tensor."""
        base = (self.c1 - self.c0,) + ((self.r1 - self.r0,) if len(self.info.shape) > 1 else ())
        if len(self.info.shape) > 2 and not self.drop_plane:
            base += (self.p1 - self.p0,)
        return base

    @property
    def col_bytes(self) -> tuple[int, int]:
        """Byte range of the columns inside one source row."""
        blk, size = block_info(self.info.qtype)
        return self.c0 // blk * size, self.c1 // blk * size

    @property
    def n_bytes(self) -> int:
        b0, b1 = self.col_bytes
        return (self.p1 - self.p0) * (self.r1 - self.r0) * (b1 - b0)

    @property
    def full_rows(self) -> bool:
        return self.c0 == 0 and self.c1 == self.info.shape[0]


def whole(info: TensorInfo, replica: bool = False) -> Slice:
    """The whole tensor as one slice."""
    return Slice(info, 0, info.n_rows, 0, info.shape[0], 0, info.n_planes, False, replica)


@dataclass(frozen=True)
class ByteSlice:
    """Raw bytes [start, stop) of the source file, stored as a 1-D I8 tensor called ``name``."""

    name: str
    start: int
    stop: int

    @property
    def n_bytes(self) -> int:
        return self.stop - self.start

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.stop - self.start,)

    @property
    def qtype(self) -> GGMLQuantizationType:
        return GGMLQuantizationType.I8

    replica = False


AnySlice = Slice | ByteSlice
