"""Chunk records held column-wise: a run's ``report["sizing"]`` at a million chunks.

Covers :class:`ChunkRecords`, the client's way of holding chunk records: one typed
numpy buffer per field (integers as narrow as their values allow, floats as
``float64``, strings, flags and column lists dictionary-encoded, task keys as a
dictionary-encoded prefix and a number, ``column_bytes`` as its dictionary-encoded
column names and a flat buffer of byte counts). It reads as a sequence of one
``dict`` per chunk (indexing, slicing, iteration, ``len``, ``==`` with a list of
dicts), and gives its columns to :func:`~coffea_sizing.chunk_table` and
:func:`~coffea_sizing.save_records` without building those dicts.

Does not define the record's fields or their meaning (:mod:`coffea_sizing.records`)
nor receive records (:mod:`coffea_sizing.executor`). What crosses the wire stays a
plain dict (:func:`coffea_sizing.records.pack_record`); this is only how the client
keeps them. Rows read back are new dicts each time: changing one changes nothing
held here (build a list, ``[dict(r) for r in records]``, to edit records).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from .records import _FLOAT_FIELDS, _INT_FIELDS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["ChunkRecords"]

#: Integer fields beyond those of :mod:`coffea_sizing.records`'s type checks.
_INTS = _INT_FIELDS | {"entrystart", "entrystop", "task_nbytes"}
_FLOATS = _FLOAT_FIELDS | {"compute_start", "compute_stop"}
_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)
_CODE_TYPES = (np.uint8, np.uint16, np.uint32)


class _Absent:
    """A field a row does not have (not even as ``None``)."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT_ROW = _Absent()


class _Column:
    """One field's values: a typed buffer, values it cannot type aside (``odd``),
    and which rows have the field at all (``present``; ``None``: every row)."""

    __slots__ = ("odd", "present")

    def __init__(self, capacity: int, present: bool) -> None:
        self.odd: dict[int, Any] = {}
        self.present: np.ndarray | None = (
            None if present else np.zeros(capacity, dtype=bool)
        )

    # the typed part, one kind per subclass
    def _set(self, row: int, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get(self, row: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _resize(self, capacity: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _values(self, rows: np.ndarray) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def nbytes(self) -> int:
        return 0 if self.present is None else self.present.nbytes

    def set(self, row: int, value: Any) -> None:
        if self.odd:
            self.odd.pop(row, None)
        if not self._set(row, value):
            self.odd[row] = value
        if self.present is not None:
            self.present[row] = True

    def get(self, row: int) -> Any:
        if self.present is not None and not self.present[row]:
            return _ABSENT_ROW
        if self.odd and row in self.odd:
            return self.odd[row]
        return self._get(row)

    def resize(self, capacity: int) -> None:
        self._resize(capacity)
        if self.present is not None:
            self.present = _resized(self.present, capacity, False)

    def values(self, rows: np.ndarray) -> list[Any]:
        """The values of ``rows`` as Python objects (absent rows as ``None``)."""
        out = self._values(rows)
        if self.odd:
            where = {int(r): i for i, r in enumerate(rows.tolist()) if r in self.odd}
            for row, i in where.items():
                out[i] = self.odd[row]
        if self.present is not None:
            for i in np.flatnonzero(~self.present[rows]).tolist():
                out[i] = None
        return out

    def series(self, rows: np.ndarray) -> Any:
        """The column for a table: what pandas would infer from its values."""
        import pandas as pd

        # a NaN is a missing value in a table, as None is
        return pd.Series(
            [
                None if type(v) is float and math.isnan(v) else v
                for v in self.values(rows)
            ]
        )

    def all_present(self, rows: np.ndarray) -> bool:
        return self.present is None or bool(self.present[rows].all())

    def any_present(self, rows: np.ndarray) -> bool:
        return self.present is None or bool(self.present[rows].any())

    def copy_rows(self, rows: np.ndarray) -> _Column:  # pragma: no cover - abstract
        raise NotImplementedError

    def _copy_common(self, new: _Column, rows: np.ndarray) -> _Column:
        if self.odd:
            where = {int(r): i for i, r in enumerate(rows.tolist())}
            new.odd = {where[r]: v for r, v in self.odd.items() if r in where}
        new.present = None if self.present is None else self.present[rows].copy()
        return new


def _resized(array: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    out = np.full(capacity, fill, dtype=array.dtype)
    n = min(capacity, len(array))
    out[:n] = array[:n]
    return out


class _IntColumn(_Column):
    """Integers in the narrowest of int8 ... int64 that holds them; ``None`` is the
    type's smallest value."""

    __slots__ = ("_data", "_max", "_min")

    def __init__(self, capacity: int, present: bool) -> None:
        super().__init__(capacity, present)
        self.data = np.full(capacity, np.iinfo(np.int8).min, dtype=np.int8)

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, array: np.ndarray) -> None:
        self._data = array
        info = np.iinfo(array.dtype)
        self._min, self._max = int(info.min), int(info.max)

    def _sentinel(self) -> int:
        return self._min

    def _set(self, row: int, value: Any) -> bool:
        if value is None:
            self._data[row] = self._min
            return True
        if type(value) is not int:
            return False
        if not self._min < value <= self._max:
            if not -(2**63) < value < 2**63:
                return False
            self._widen(value)
        self._data[row] = value
        return True

    def _widen(self, value: int) -> None:
        old = self.data
        sentinel = np.iinfo(old.dtype).min
        for kind in _INT_TYPES:
            info = np.iinfo(kind)
            if info.min < value <= info.max and info.bits > old.dtype.itemsize * 8:
                break
        new = old.astype(kind)
        new[old == sentinel] = np.iinfo(kind).min
        self.data = new

    def _get(self, row: int) -> Any:
        value = int(self._data[row])
        return None if value == self._min else value

    def _resize(self, capacity: int) -> None:
        self.data = _resized(self.data, capacity, self._sentinel())

    def nbytes(self) -> int:
        return super().nbytes() + self.data.nbytes

    def _values(self, rows: np.ndarray) -> list[Any]:
        data = self.data[rows]
        sentinel = self._sentinel()
        out: list[Any] = data.tolist()
        for i in np.flatnonzero(data == sentinel).tolist():
            out[i] = None
        return out

    def series(self, rows: np.ndarray) -> Any:
        import pandas as pd

        if self.odd or (self.present is not None and not self.present[rows].all()):
            return super().series(rows)
        data = self.data[rows]
        missing = data == self._sentinel()
        if not missing.any():
            return pd.Series(data.astype(np.int64))
        if missing.all():
            return pd.Series([None] * len(rows), dtype=object)
        out = data.astype(np.float64)
        out[missing] = np.nan
        return pd.Series(out)

    def copy_rows(self, rows: np.ndarray) -> _Column:
        new = _IntColumn(0, True)
        new.data = self.data[rows].copy()
        return self._copy_common(new, rows)


class _FloatColumn(_Column):
    """Floats as ``float64``; ``None`` is NaN (a NaN value is kept aside)."""

    __slots__ = ("data",)

    def __init__(self, capacity: int, present: bool) -> None:
        super().__init__(capacity, present)
        self.data = np.full(capacity, np.nan, dtype=np.float64)

    def _set(self, row: int, value: Any) -> bool:
        if value is None:
            self.data[row] = np.nan
            return True
        if type(value) is not float or math.isnan(value):
            return False
        self.data[row] = value
        return True

    def _get(self, row: int) -> Any:
        value = float(self.data[row])
        return None if math.isnan(value) else value

    def _resize(self, capacity: int) -> None:
        self.data = _resized(self.data, capacity, np.nan)

    def nbytes(self) -> int:
        return super().nbytes() + self.data.nbytes

    def _values(self, rows: np.ndarray) -> list[Any]:
        data = self.data[rows]
        out: list[Any] = data.tolist()
        for i in np.flatnonzero(np.isnan(data)).tolist():
            out[i] = None
        return out

    def series(self, rows: np.ndarray) -> Any:
        import pandas as pd

        if self.odd or (self.present is not None and not self.present[rows].all()):
            return super().series(rows)
        data = self.data[rows]
        if np.isnan(data).all():
            return pd.Series([None] * len(rows), dtype=object)
        return pd.Series(data.copy())

    def copy_rows(self, rows: np.ndarray) -> _Column:
        new = _FloatColumn(0, True)
        new.data = self.data[rows].copy()
        return self._copy_common(new, rows)


def _hashable(value: Any) -> Any:
    """The dictionary's key of a value: its type with it (``1``, ``1.0`` and
    ``True`` stay apart); lists of strings as tuples. ``None``: not encodable."""
    kind = type(value)
    if kind is list:
        if all(type(v) is str for v in value):
            return (list, tuple(value))
        return None
    if value is None or kind in (str, int, float, bool):
        if kind is float and math.isnan(value):
            return None
        return (kind, value)
    return None


def _copied(value: Any) -> Any:
    """A list value as a list of its own (rows never share one)."""
    return list(value) if type(value) is list else value


class _CodedColumn(_Column):
    """Dictionary-encoded values (strings, flags, small sets of numbers, lists of
    strings): a code per row, 8 bits until 256 distinct values, then 16, then 32.
    Code 0 is ``None``."""

    __slots__ = ("codes", "index", "uniques")

    def __init__(self, capacity: int, present: bool) -> None:
        super().__init__(capacity, present)
        self.codes = np.zeros(capacity, dtype=np.uint8)
        self.uniques: list[Any] = [None]
        self.index: dict[Any, int] = {(type(None), None): 0}

    def code(self, value: Any) -> int | None:
        key = _hashable(value)
        if key is None:
            return None
        code = self.index.get(key)
        if code is None:
            code = self.index[key] = len(self.uniques)
            self.uniques.append(tuple(value) if type(value) is list else value)
            if code > np.iinfo(self.codes.dtype).max:
                wider = _CODE_TYPES[_CODE_TYPES.index(self.codes.dtype.type) + 1]
                self.codes = self.codes.astype(wider)
        return code

    def _set(self, row: int, value: Any) -> bool:
        code = self.code(value)
        if code is None:
            return False
        self.codes[row] = code
        return True

    def _unique(self, code: int) -> Any:
        value = self.uniques[code]
        return list(value) if type(value) is tuple else value

    def _get(self, row: int) -> Any:
        return self._unique(int(self.codes[row]))

    def _resize(self, capacity: int) -> None:
        self.codes = _resized(self.codes, capacity, 0)

    def nbytes(self) -> int:
        return super().nbytes() + self.codes.nbytes

    def _values(self, rows: np.ndarray) -> list[Any]:
        lookup = [self._unique(i) for i in range(len(self.uniques))]
        if any(type(v) is list for v in lookup):
            return [_copied(lookup[c]) for c in self.codes[rows].tolist()]
        return [lookup[c] for c in self.codes[rows].tolist()]

    def series(self, rows: np.ndarray) -> Any:
        import pandas as pd

        if self.odd or (self.present is not None and not self.present[rows].all()):
            return super().series(rows)
        codes = self.codes[rows]
        used = np.flatnonzero(np.bincount(codes, minlength=len(self.uniques)))
        remap = np.zeros(len(self.uniques), dtype=np.int64)
        remap[used] = np.arange(len(used))
        uniques = [self._unique(int(i)) for i in used]
        if any(type(v) is list for v in uniques):
            # a list object per distinct value, shared by the rows holding it (a
            # new list per row costs ~0.5 us, 0.5 s per million rows)
            shared = np.empty(len(uniques), dtype=object)
            for i, value in enumerate(uniques):
                shared[i] = value
            return pd.Series(shared[remap[codes]], dtype=object)
        return pd.Series(uniques).take(remap[codes]).reset_index(drop=True)

    def copy_rows(self, rows: np.ndarray) -> _Column:
        new = _CodedColumn(0, True)
        new.codes = self.codes[rows].copy()
        new.uniques = list(self.uniques)
        new.index = dict(self.index)
        return self._copy_common(new, rows)


class _KeyColumn(_Column):
    """Task keys ``<prefix>-<number>``: the prefix dictionary-encoded, the number
    an integer (a key without a number: the number is ``None``)."""

    __slots__ = ("numbers", "prefixes")

    def __init__(self, capacity: int, present: bool) -> None:
        super().__init__(capacity, present)
        self.prefixes = _CodedColumn(capacity, True)
        self.numbers = _IntColumn(capacity, True)

    def _set(self, row: int, value: Any) -> bool:
        if value is not None and type(value) is not str:
            return False
        head, number = value, None
        if value is not None:
            prefix, sep, tail = value.rpartition("-")
            if sep and tail.isdigit() and tail.isascii() and str(int(tail)) == tail:
                head, number = prefix, int(tail)
        return self.prefixes._set(row, head) and self.numbers._set(row, number)

    def _get(self, row: int) -> Any:
        head, number = self.prefixes._get(row), self.numbers._get(row)
        return head if number is None else f"{head}-{number}"

    def _resize(self, capacity: int) -> None:
        self.prefixes._resize(capacity)
        self.numbers._resize(capacity)

    def nbytes(self) -> int:
        return super().nbytes() + self.prefixes.nbytes() + self.numbers.nbytes()

    def _values(self, rows: np.ndarray) -> list[Any]:
        heads = self.prefixes._values(rows)
        numbers = self.numbers._values(rows)
        return [
            h if n is None else f"{h}-{n}" for h, n in zip(heads, numbers, strict=True)
        ]

    def arrow(self, rows: np.ndarray) -> Any:
        """The keys as a pyarrow string array, joined by pyarrow (fast)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        codes = self.prefixes.codes[rows]
        numbers = self.numbers.data[rows]
        missing = numbers == self.numbers._sentinel()
        if len(rows) and not missing.any() and (codes == codes[0]).all():
            head = self.prefixes.uniques[int(codes[0])]
            if type(head) is str:  # one prefix (a run's keys): prefix + number
                return pc.binary_join_element_wise(
                    pa.scalar(f"{head}-"), pa.array(numbers).cast(pa.string()), ""
                )
        heads = pa.DictionaryArray.from_arrays(
            pa.array(self.prefixes.codes[rows].astype(np.int32)),
            pa.array([v if v is not None else None for v in self.prefixes.uniques]),
        ).cast(pa.string())
        numbers = self.numbers.data[rows]
        missing = numbers == self.numbers._sentinel()
        nums = pa.array(numbers.astype(np.int64), mask=missing).cast(pa.string())
        joined = pc.binary_join_element_wise(heads, nums, "-")
        return pc.if_else(pc.is_null(nums), heads, joined)

    def series(self, rows: np.ndarray) -> Any:
        import pandas as pd

        if self.odd or (self.present is not None and not self.present[rows].all()):
            return super().series(rows)
        keys = self.arrow(rows)
        kind = _text_dtype()
        if kind is None or keys.null_count == len(keys):
            return pd.Series(keys.to_pylist())
        return pd.Series(pd.array(keys, dtype=kind))

    def copy_rows(self, rows: np.ndarray) -> _Column:
        new = _KeyColumn(0, True)
        new.prefixes = self.prefixes.copy_rows(rows)  # type: ignore[assignment]
        new.numbers = self.numbers.copy_rows(rows)  # type: ignore[assignment]
        return self._copy_common(new, rows)


class _MapColumn(_Column):
    """``{name: int}`` mappings (``column_bytes``): the names dictionary-encoded as
    a tuple, the numbers in a flat int64 buffer from a per-row start."""

    __slots__ = ("flat", "names", "size", "starts")

    def __init__(self, capacity: int, present: bool) -> None:
        super().__init__(capacity, present)
        self.names = _CodedColumn(capacity, True)
        self.starts = _IntColumn(capacity, True)
        self.flat = np.zeros(0, dtype=np.int64)
        self.size = 0

    def _set(self, row: int, value: Any) -> bool:
        if value is None:
            return self.names._set(row, None) and self.starts._set(row, None)
        if type(value) is not dict:
            return False
        names = list(value)
        numbers = list(value.values())
        if not all(type(k) is str for k in names) or not all(
            type(v) is int and -(2**63) <= v < 2**63 for v in numbers
        ):
            return False
        if self.size + len(numbers) > len(self.flat):
            self.flat = _resized(
                self.flat, max(2 * len(self.flat), self.size + len(numbers), 64), 0
            )
        self.flat[self.size : self.size + len(numbers)] = numbers
        start, self.size = self.size, self.size + len(numbers)
        return self.names._set(row, names) and self.starts._set(row, start)

    def _get(self, row: int) -> Any:
        names = self.names._get(row)
        if names is None:
            return None
        start = self.starts._get(row)
        return dict(
            zip(names, self.flat[start : start + len(names)].tolist(), strict=True)
        )

    def _resize(self, capacity: int) -> None:
        self.names._resize(capacity)
        self.starts._resize(capacity)

    def trim(self) -> None:
        self.flat = self.flat[: self.size].copy()

    def nbytes(self) -> int:
        return (
            super().nbytes()
            + self.names.nbytes()
            + self.starts.nbytes()
            + self.flat.nbytes
        )

    def _values(self, rows: np.ndarray) -> list[Any]:
        flat = self.flat.tolist()
        out: list[Any] = []
        uniques = self.names.uniques
        codes = self.names.codes[rows].tolist()
        starts = self.starts.data[rows].tolist()
        for code, start in zip(codes, starts, strict=True):
            names = uniques[code]
            out.append(
                None
                if names is None
                else dict(zip(names, flat[start : start + len(names)], strict=True))
            )
        return out

    def series(self, rows: np.ndarray) -> Any:
        import pandas as pd

        if self.odd or (self.present is not None and not self.present[rows].all()):
            return super().series(rows)
        codes = self.names.codes[rows]
        starts = self.starts.data[rows].astype(np.int64)
        out = np.empty(len(rows), dtype=object)
        for code in np.unique(codes).tolist():
            names = self.names.uniques[code]
            where = np.flatnonzero(codes == code)
            if names is None:
                continue  # None already
            if not names:
                out[where] = [{} for _ in range(len(where))]
                continue
            # the values of these rows as a (rows, names) matrix, a dict per row
            at = starts[where][:, None] + np.arange(len(names))
            out[where] = list(map(_dict_maker(names), *self.flat[at].T.tolist()))
        return pd.Series(out, dtype=object)

    def json_arrow(self, rows: np.ndarray) -> Any:
        """The mappings as the JSON text ``json.dumps`` writes (``{"a": 1, "b":
        2}``), made by pyarrow for each set of names (its text with holes for the
        numbers); ``None`` when a name needs escaping in JSON or there are more
        than :data:`_MAX_GROUPS` sets of names."""
        import pyarrow as pa

        codes = self.names.codes[rows]
        used = np.flatnonzero(np.bincount(codes, minlength=len(self.names.uniques)))
        if len(used) > _MAX_GROUPS:
            return None
        starts = self.starts.data[rows].astype(np.int64)
        named = [c for c in used.tolist() if self.names.uniques[c] is not None]
        if len(named) == 1 and self.names.uniques[named[0]]:
            # one set of names (a run reading the same branches): every row's text
            # made at once, the rows without a mapping then marked null
            names = self.names.uniques[named[0]]
            pieces = _json_pieces(names)
            if pieces is None:
                return None
            missing = codes == 0
            starts[missing] = 0
            text = _json_join(
                pieces, [self.flat[starts + i] for i in range(len(names))]
            )
            if not missing.any():
                return text
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
            return pa.StringArray.from_buffers(
                len(text), text.buffers()[1], text.buffers()[2], validity
            )
        parts: list[Any] = []
        where: list[np.ndarray] = []
        for code in used.tolist():
            names = self.names.uniques[code]
            at = np.flatnonzero(codes == code)
            if names is None:
                parts.append(pa.nulls(len(at), pa.string()))
            else:
                pieces = _json_pieces(names)
                if pieces is None:
                    return None
                if not names:
                    parts.append(pa.array(["{}"] * len(at), type=pa.string()))
                else:
                    matrix = self.flat[starts[at][:, None] + np.arange(len(names))]
                    parts.append(_json_join(pieces, list(matrix.T)))
            where.append(at)
        if not parts:
            return pa.array([], type=pa.string())
        # back in row order
        order = np.empty(len(rows), dtype=np.int64)
        order[np.concatenate(where)] = np.arange(len(rows))
        return pa.concat_arrays(parts).take(pa.array(order))

    def copy_rows(self, rows: np.ndarray) -> _Column:
        new = _MapColumn(0, True)
        new.names = self.names.copy_rows(rows)  # type: ignore[assignment]
        new.starts = self.starts.copy_rows(rows)  # type: ignore[assignment]
        new.flat, new.size = self.flat[: self.size].copy(), self.size
        return self._copy_common(new, rows)


#: Distinct sets of names (of ``column_bytes``) beyond which their JSON is written
#: and read value by value.
_MAX_GROUPS = 256


def _json_pieces(names: tuple[str, ...]) -> list[str] | None:
    """The text of ``json.dumps`` of a mapping of ``names`` around its values:
    ``['{"a": ', ', "b": ', '}']``; ``None`` when a name is escaped in JSON."""
    import json

    quoted = [json.dumps(name) for name in names]
    if any(q != f'"{name}"' for q, name in zip(quoted, names, strict=True)):
        return None
    if not names:
        return ["{}"]
    return [
        *(("{" if i == 0 else ", ") + q + ": " for i, q in enumerate(quoted)),
        "}",
    ]


def _json_join(pieces: list[str], values: list[np.ndarray]) -> Any:
    """pyarrow's text of the rows' mappings: ``pieces`` (:func:`_json_pieces`)
    around the integers of ``values`` (one array per name)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = [pa.array(v).cast(pa.string()) for v in values]
    joined = [x for pair in zip(pieces, texts, strict=False) for x in pair]
    return pc.binary_join_element_wise(*joined, pieces[-1], "")


@functools.lru_cache(maxsize=64)
def _dict_maker(names: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function of ``len(names)`` values making the dict ``{name: value}``: a
    dict display of constant keys (``{'a': v0, 'b': v1}``), built twice as fast
    as ``dict(zip(names, values))``. The keys are ``repr`` of ``str``: literals."""
    if not all(type(name) is str for name in names):
        raise TypeError("names must be str")
    args = ", ".join(f"v{i}" for i in range(len(names)))
    body = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    maker: Callable[..., dict[str, Any]] = eval(f"lambda {args}: {{{body}}}")
    return maker


@functools.cache
def _text_dtype() -> Any:
    """The dtype pandas gives a column of text (its Arrow-backed ``str``), or
    ``None`` when it is not Arrow-backed (then text columns are built from values)."""
    import pandas as pd

    kind = pd.Series(["a", None]).dtype
    return kind if getattr(kind, "storage", None) == "pyarrow" else None


def _column_for(name: str, capacity: int, present: bool) -> _Column:
    if name in _INTS:
        return _IntColumn(capacity, present)
    if name in _FLOATS:
        return _FloatColumn(capacity, present)
    if name == "key":
        return _KeyColumn(capacity, present)
    if name == "column_bytes":
        return _MapColumn(capacity, present)
    return _CodedColumn(capacity, present)


class ChunkRecords(Sequence[dict[str, Any]]):
    """Chunk records held column-wise; reads as a sequence of one dict per chunk.

    ``report["sizing"]`` of a :class:`~coffea_sizing.SizingDaskExecutor` run and
    ``load_records(path)["sizing"]`` are one. Each field is a typed column (see the
    module notes), a few bytes per chunk; a value a column cannot type (a field
    of another type than its name says) is kept as it is, so every record reads
    back equal to the one stored.

    Parameters
    ----------
    rows : int, optional
        Rows to start with, each holding ``fields`` as ``None``.
    fields : iterable of str, optional
        Fields every row has (``None`` until set); other fields are added as they
        are set, absent from the rows that never set them.

    Examples
    --------
    >>> from coffea_sizing.columnar import ChunkRecords
    >>> recs = ChunkRecords.from_records([
    ...     {"key": "coffea-sizing-chunk-ab12-0", "bytesread": 527, "columns": ["nJet"]},
    ...     {"key": "coffea-sizing-chunk-ab12-1", "bytesread": None, "columns": []}])
    >>> len(recs), recs[1]
    (2, {'key': 'coffea-sizing-chunk-ab12-1', 'bytesread': None, 'columns': []})
    >>> recs == [dict(r) for r in recs], [r["bytesread"] for r in recs]
    (True, [527, None])
    >>> recs.column("columns")
    [['nJet'], []]
    """

    def __init__(self, rows: int = 0, fields: Iterable[str] = ()) -> None:
        self._n = rows
        self._capacity = rows
        self._columns: dict[str, _Column] = {
            name: _column_for(name, rows, True) for name in fields
        }

    # ------------------------------------------------------------ building
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> ChunkRecords:
        """Records (mappings) held column-wise, equal to them row by row."""
        if isinstance(records, ChunkRecords):
            return records.take(np.arange(len(records)))
        out = cls()
        for record in records:
            out.append(record)
        out.finish()
        return out

    def _grow(self, rows: int) -> None:
        if rows <= self._capacity:
            return
        capacity = max(rows, int(self._capacity * 1.5), 64)
        for column in self._columns.values():
            column.resize(capacity)
        self._capacity = capacity

    def append(self, record: Mapping[str, Any]) -> None:
        """Add a row holding ``record``'s fields (fields it lacks: absent)."""
        row = self._n
        self._grow(row + 1)
        self._n += 1
        for name in self._columns:
            if name not in record:
                self.discard(row, name)
        self.update(row, record)

    def update(self, row: int, record: Mapping[str, Any]) -> None:
        """Set ``record``'s fields in row ``row`` (others unchanged)."""
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} of {self._n}")
        columns = self._columns
        for name, value in record.items():
            column = columns.get(name)
            if column is None:
                column = columns[str(name)] = _column_for(
                    str(name), self._capacity, False
                )
            # column.set(row, value), inlined: this runs per field per chunk
            if column.odd:
                column.odd.pop(row, None)
            if not column._set(row, value):
                column.odd[row] = value
            if column.present is not None:
                column.present[row] = True

    def fill(self, name: str, values: Sequence[Any]) -> None:
        """Set field ``name`` of every row, from ``values`` (one per row)."""
        if len(values) != self._n:
            raise ValueError(f"{len(values)} values for {self._n} rows")
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = _column_for(name, self._capacity, True)
        if isinstance(column, _CodedColumn) and not column.odd:
            codes = [column.code(v) for v in values]
            if None not in codes:
                column.codes[: self._n] = np.asarray(codes, dtype=np.int64)
                if column.present is not None:
                    column.present[: self._n] = True
                return
        for row, value in enumerate(values):
            column.set(row, value)

    def value(self, row: int, name: str) -> Any:
        """Field ``name`` of row ``row`` (``None`` when the row lacks it)."""
        column = self._columns.get(name)
        value = None if column is None else column.get(row)
        return None if value is _ABSENT_ROW else value

    def distinct(self, name: str) -> list[Any]:
        """The distinct values of a dictionary-encoded field (and any others)."""
        column = self._columns.get(name)
        if not isinstance(column, _CodedColumn) or column.present is not None:
            return self.column(name)
        used = np.flatnonzero(
            np.bincount(column.codes[: self._n], minlength=len(column.uniques))
        )
        return [column._unique(int(i)) for i in used] + list(column.odd.values())

    def last_by(self, by: str, name: str) -> list[tuple[Any, Any]]:
        """``(value of by, value of name)`` pairs whose ``dict`` is that of every
        row's pair: for each distinct value of field ``by``, the value of ``name``
        in the last row holding it, in the order the values of ``by`` first appear
        (without a pair per row when ``by`` is dictionary-encoded).

        Examples
        --------
        >>> from coffea_sizing.columnar import ChunkRecords
        >>> recs = ChunkRecords.from_records([{"w": "a", "m": 1}, {"w": "b", "m": 2},
        ...                                   {"w": "a", "m": 3}])
        >>> recs.last_by("w", "m")
        [('a', 3), ('b', 2)]
        """
        column = self._columns.get(by)
        if (
            isinstance(column, _CodedColumn)
            and not column.odd
            and column.present is None
            and not any(isinstance(v, tuple) for v in column.uniques)
        ):
            codes = column.codes[: self._n]
            # the rows where each value first and last appears
            _, first = np.unique(codes, return_index=True)
            _, last = np.unique(codes[::-1], return_index=True)
            last = self._n - 1 - last
            order = np.argsort(first, kind="stable")
            return [
                (self.value(int(f), by), self.value(int(r), name))
                for f, r in zip(first[order], last[order], strict=True)
            ]
        return list(zip(self.column(by), self.column(name), strict=True))

    def discard(self, row: int, name: str) -> None:
        """Make field ``name`` absent from row ``row``."""
        column = self._columns.get(name)
        if column is None:
            return
        if column.present is None:
            column.present = np.ones(self._capacity, dtype=bool)
        column.present[row] = False
        column.odd.pop(row, None)

    def finish(self) -> ChunkRecords:
        """Release spare capacity (after the last row); returns ``self``."""
        if self._capacity != self._n:
            for column in self._columns.values():
                column.resize(self._n)
            self._capacity = self._n
        for column in self._columns.values():
            if column.present is not None and column.present.all():
                column.present = None
            if isinstance(column, _MapColumn):
                column.trim()
        return self

    # ------------------------------------------------------------ reading
    @property
    def fields(self) -> list[str]:
        """The fields of the records, in the order they first appeared."""
        return list(self._columns)

    def has(self, name: str, *, every: bool = False) -> bool:
        """Whether any row (``every``: every row) has field ``name``."""
        column = self._columns.get(name)
        if column is None:
            return False
        rows = np.arange(self._n)
        return column.all_present(rows) if every else column.any_present(rows)

    def column(self, name: str) -> list[Any]:
        """One field's values, row by row (``None`` where a row lacks it)."""
        column = self._columns.get(name)
        if column is None:
            return [None] * self._n
        return column.values(np.arange(self._n))

    def nbytes(self) -> int:
        """Bytes of the columns' buffers (dictionaries and odd values not counted)."""
        return sum(column.nbytes() for column in self._columns.values())

    def __len__(self) -> int:
        return self._n

    def _row(self, row: int) -> dict[str, Any]:
        out = {}
        for name, column in self._columns.items():
            value = column.get(row)
            if value is not _ABSENT_ROW:
                out[name] = value
        return out

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> ChunkRecords: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self.take(np.arange(self._n)[index])
        row = int(index)
        if row < 0:
            row += self._n
        if not 0 <= row < self._n:
            raise IndexError(f"record {index} of {self._n}")
        return self._row(row)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = list(self._columns)
        rows = np.arange(self._n)
        values = [self._columns[name].values(rows) for name in names]
        present = [
            None if column.present is None else column.present[: self._n].tolist()
            for column in self._columns.values()
        ]
        for i in range(self._n):
            yield {
                name: vals[i]
                for name, vals, has in zip(names, values, present, strict=True)
                if has is None or has[i]
            }

    def take(self, rows: Sequence[int] | np.ndarray) -> ChunkRecords:
        """The records of ``rows``, in that order, as a new :class:`ChunkRecords`."""
        index = np.asarray(rows, dtype=np.int64)
        out = ChunkRecords()
        out._n = out._capacity = len(index)
        out._columns = {
            name: column.copy_rows(index) for name, column in self._columns.items()
        }
        return out.finish()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkRecords | list | tuple):
            return len(self) == len(other) and all(
                a == b for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Any) -> list[dict[str, Any]]:
        if isinstance(other, ChunkRecords | list | tuple):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: Any) -> list[dict[str, Any]]:
        if isinstance(other, list | tuple):
            return [*other, *self]
        return NotImplemented

    def __repr__(self) -> str:
        return f"<ChunkRecords: {self._n} records, {len(self._columns)} fields>"

    # ------------------------------------------------------------ tables
    def to_frame(self, fields: Sequence[str] = ()) -> pd.DataFrame:
        """A table: ``fields`` first (``None`` columns if no row has them), then
        the other fields; column types as pandas infers them from the records.

        A list cell (``columns``, ``columns_read``) is one list object for all the
        rows holding that list, as cells of a copied table are shared in pandas
        (copy one before changing it in place); a ``column_bytes`` dict is one per
        row."""
        import pandas as pd

        rows = np.arange(self._n)
        names = list(fields) + [n for n in self._columns if n not in set(fields)]
        data = {}
        for name in names:
            column = self._columns.get(name)
            if column is None:
                data[name] = pd.Series([None] * self._n, dtype=object)
            else:
                data[name] = column.series(rows)
        if not names:
            return pd.DataFrame(index=pd.RangeIndex(self._n))
        # the columns as built (copy=False): not stacked into 2-D blocks, a copy of
        # every value (and a reference per object) less
        return pd.DataFrame(data, columns=names, copy=False)

    def to_arrow(self) -> tuple[list[str], list[pa.Array], list[str], pa.Array | None]:
        """The columns as pyarrow arrays for :func:`~coffea_sizing.save_records`:
        ``(fields, arrays, json_fields, absent)``, ``absent`` the per-row list of
        fields a row lacks (``None`` when every row has every field)."""
        import json

        import pyarrow as pa

        rows = np.arange(self._n)
        names: list[str] = []
        arrays: list[pa.Array] = []
        json_fields: list[str] = []
        for name, column in self._columns.items():
            array = _arrow(column, rows)
            if array is None and isinstance(column, _MapColumn) and not column.odd:
                array = column.json_arrow(rows)
                if array is not None:
                    json_fields.append(name)
            if array is None:
                values = column.values(rows)
                ok = False
                if not any(isinstance(v, Mapping) for v in values):
                    try:
                        array = pa.array(values)
                        ok = array.to_pylist() == values
                    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                        pass
                if not ok:
                    array = pa.array(
                        [None if v is None else json.dumps(v) for v in values],
                        type=pa.string(),
                    )
                    json_fields.append(name)
            names.append(name)
            arrays.append(array)
        absent = None
        if not names and self._n:  # rows without fields: kept as rows all the same
            absent = pa.array([[]] * self._n, type=pa.list_(pa.string()))
        partial = [
            (i, column.present[: self._n])
            for i, column in enumerate(self._columns.values())
            if column.present is not None
        ]
        if partial:
            # per row, the fields it lacks (in field order): a list array of the
            # (row, field) pairs, in row order
            lacks = np.stack([~present for _, present in partial], axis=1)
            row, field = np.nonzero(lacks)
            offsets = np.zeros(self._n + 1, dtype=np.int32)
            np.cumsum(np.bincount(row, minlength=self._n), out=offsets[1:])
            which = np.asarray([i for i, _ in partial], dtype=np.int64)[field]
            absent = pa.ListArray.from_arrays(
                pa.array(offsets),
                pa.array(names, type=pa.string()).take(pa.array(which)),
            )
        return names, arrays, json_fields, absent

    @classmethod
    def from_arrow(
        cls,
        table: Any,
        fields: Sequence[str],
        json_fields: Iterable[str] = (),
        absent: str | None = None,
    ) -> ChunkRecords:
        """Records from a pyarrow table that :meth:`to_arrow` made (read back)."""
        import json

        out = cls()
        n = out._n = out._capacity = table.num_rows
        as_json = set(json_fields)
        for name in fields:
            array = table.column(name).combine_chunks()
            column: _Column | None
            if name in as_json:
                column = _maps_from_arrow(array) if name == "column_bytes" else None
            else:
                column = _from_arrow(name, array, n)
            if column is None:
                column = _column_for(name, n, True)
                values = array.to_pylist()
                if name in as_json:
                    values = [None if v is None else json.loads(v) for v in values]
                for i, value in enumerate(values):
                    column.set(i, value)
            out._columns[name] = column
        if absent is not None and absent in table.column_names:
            out._discard_listed(table.column(absent).combine_chunks())
        return out.finish()

    def _discard_listed(self, lacking: Any) -> None:
        """Make absent the fields each row lists in ``lacking`` (a pyarrow array of
        lists of field names, one per row)."""
        import pyarrow.compute as pc

        lengths = pc.list_value_length(lacking).fill_null(0).to_numpy()
        rows = np.repeat(np.arange(len(lacking), dtype=np.int64), lengths)
        encoded = pc.dictionary_encode(pc.list_flatten(lacking))
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        for i, name in enumerate(encoded.dictionary.to_pylist()):
            column = self._columns.get(name)
            if column is None:
                continue
            where = rows[indices == i]
            if column.present is None:
                column.present = np.ones(self._capacity, dtype=bool)
            column.present[where] = False
            if column.odd:
                for row in where.tolist():
                    column.odd.pop(row, None)


def _arrow(column: _Column, rows: np.ndarray) -> Any:
    """A pyarrow array of a column's values, or ``None`` (then built from them)."""
    import pyarrow as pa

    if column.odd:
        return None
    if isinstance(column, _IntColumn):
        data = column.data[rows]
        missing = data == column._sentinel()
        if missing.all():
            return pa.nulls(len(rows))
        return pa.array(data.astype(np.int64), mask=missing if missing.any() else None)
    if isinstance(column, _FloatColumn):
        data = column.data[rows]
        missing = np.isnan(data)
        if missing.all():
            return pa.nulls(len(rows))
        return pa.array(data, mask=missing if missing.any() else None)
    if isinstance(column, _KeyColumn):
        return column.arrow(rows)
    if isinstance(column, _MapColumn):
        return None
    if isinstance(column, _CodedColumn):
        codes = column.codes[rows]
        used = np.flatnonzero(np.bincount(codes, minlength=len(column.uniques)))
        uniques = [column._unique(int(i)) for i in used]
        kinds = {type(v) for v in uniques if v is not None}
        if not kinds:
            return pa.nulls(len(rows))
        if len(kinds) > 1:
            return None  # pyarrow types them from the values
        kind = kinds.pop()
        if kind is int and not all(v is None or -(2**63) <= v < 2**63 for v in uniques):
            return None
        remap = np.zeros(len(column.uniques), dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        local = remap[codes]
        if kind is str:
            dictionary = pa.array(uniques, type=pa.string())
            is_null = np.asarray([v is None for v in uniques])[local]
            return pa.DictionaryArray.from_arrays(
                pa.array(local, mask=is_null if is_null.any() else None), dictionary
            ).cast(pa.string())
        if kind in (bool, int, float, list):
            typed = pa.array(uniques, type=pa.int64() if kind is int else None)
            return typed.take(pa.array(local))
        return None
    return None


def _from_arrow(name: str, array: Any, n: int) -> _Column | None:
    """A column read from a pyarrow array without Python objects per row, or
    ``None`` (then value by value)."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_null(kind):
        column = _column_for(name, n, True)
        return column if not isinstance(column, _MapColumn) else None
    if name in _INTS and pa.types.is_integer(kind):
        data = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        return _ints(data, valid)
    if name in _FLOATS and pa.types.is_floating(kind):
        floats = _FloatColumn(0, True)
        data = array.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        if np.isnan(data[valid]).any():
            return None
        floats.data = data
        return floats
    if name == "key" and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return _keys_from_arrow(array)
    if name == "key" or name in _INTS or name in _FLOATS or name == "column_bytes":
        return None
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_list(kind)
        or pa.types.is_dictionary(kind)
    ):
        if pa.types.is_dictionary(kind) and not (
            pa.types.is_string(kind.value_type) or pa.types.is_boolean(kind.value_type)
        ):
            array = array.cast(kind.value_type)
        if pa.types.is_list(kind):
            return _lists_from_arrow(array)
        return _coded_from_arrow(array)
    return None


def _coded_from_arrow(array: Any) -> _CodedColumn | None:
    """A dictionary-encoded column of a pyarrow array of plain values (strings,
    flags), or ``None`` when a value cannot be encoded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = (
        array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
    )
    dictionary = encoded.dictionary.to_pylist()
    coded = _CodedColumn(0, True)
    codes = [coded.code(v) for v in dictionary]
    if any(c is None for c in codes):
        return None
    lookup = np.asarray([0, *codes], dtype=np.int64)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    coded.codes = lookup[indices.astype(np.int64) + 1].astype(coded.codes.dtype)
    return coded


def _ints(data: np.ndarray, valid: np.ndarray) -> _IntColumn | None:
    """An integer column of int64 ``data`` (``valid``: not ``None``) in the
    narrowest type, or ``None`` when a value is int64's smallest (its ``None``)."""
    ints = _IntColumn(0, True)
    lo, hi = (int(data[valid].min()), int(data[valid].max())) if valid.any() else (0, 0)
    for dtype in _INT_TYPES:
        info = np.iinfo(dtype)
        if info.min < lo and hi <= info.max:
            break
    if not np.iinfo(dtype).min < lo:
        return None
    ints.data = data.astype(dtype)
    ints.data[~valid] = np.iinfo(dtype).min
    return ints


def _keys_from_arrow(array: Any) -> _KeyColumn | None:
    """Task keys from a pyarrow string array: prefix and number split by pyarrow
    (as :meth:`_KeyColumn._set` splits them; a number of 19 digits or more stays
    in the prefix, which reads back the same key)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    first = array[0].as_py() if len(array) else None
    if array.null_count == 0 and first is not None:
        prefix, sep, _ = first.rpartition("-")
        if sep:  # a run's keys: one prefix and a number
            same = pc.all(pc.starts_with(array, prefix + "-")).as_py()
            # (a slice in code points)
            tails = pc.utf8_slice_codeunits(array, len(prefix) + 1) if same else None
            if (
                tails is not None
                and pc.all(
                    pc.match_substring_regex(tails, "^(?:0|[1-9][0-9]{0,17})$")
                ).as_py()
            ):
                keys = _KeyColumn(0, True)
                code = keys.prefixes.code(prefix)
                keys.prefixes.codes = np.full(len(array), code, dtype=np.uint8)
                numbers = tails.cast(pa.int64()).to_numpy()
                ints = _ints(numbers, np.ones(len(array), dtype=bool))
                if ints is not None:
                    keys.numbers = ints
                    return keys
    parts = pc.extract_regex(
        array, r"(?s)^(?P<head>.*)-(?P<number>0|[1-9][0-9]{0,17})$"
    )
    matched = parts.is_valid()
    heads = pc.if_else(matched, parts.field("head"), array)
    numbers = pc.if_else(matched, parts.field("number"), pa.scalar(None, pa.string()))
    prefixes = _coded_from_arrow(heads)
    if prefixes is None:
        return None
    as_ints = numbers.cast(pa.int64())
    data = as_ints.fill_null(0).to_numpy(zero_copy_only=False)
    ints = _ints(data, as_ints.is_valid().to_numpy(zero_copy_only=False))
    if ints is None:
        return None
    keys = _KeyColumn(0, True)
    keys.prefixes, keys.numbers = prefixes, ints
    return keys


def _maps_from_arrow(array: Any) -> _MapColumn | None:
    """``{name: int}`` mappings from the JSON text ``json.dumps`` wrote, read by
    pyarrow a set of names at a time: the names from the first row not read yet
    (``json.loads``), then every row of exactly that text with holes for the
    numbers (a regular expression); ``None`` (then read value by value) when a row
    is no such text or there are more than :data:`_MAX_GROUPS` sets of names."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    n = len(array)
    todo = array.is_valid().to_numpy(zero_copy_only=False).copy()
    names_codes = np.zeros(n, dtype=np.int64)
    starts = np.zeros(n, dtype=np.int64)
    coded = _CodedColumn(0, True)
    blocks: list[np.ndarray] = []
    size = 0
    for _ in range(_MAX_GROUPS):
        left = np.flatnonzero(todo)
        if not len(left):
            break
        try:
            first = json.loads(array[int(left[0])].as_py())
        except ValueError:
            return None
        if type(first) is not dict or not all(
            type(k) is str and type(v) is int for k, v in first.items()
        ):
            return None
        names = tuple(first)
        pieces = _json_pieces(names)
        code = coded.code(list(names))
        if pieces is None or code is None:
            return None
        rest = array.take(pa.array(left))
        # the pieces quoted (\Q...\E: no backslash in them), a number in each hole
        pattern = "".join(
            (rf"(?P<v{i - 1}>-?(?:0|[1-9][0-9]*))" if i else "^") + rf"\Q{piece}\E"
            for i, piece in enumerate(pieces)
        )
        pattern += "$"
        if names:
            found = pc.extract_regex(rest, pattern)
            hit = found.is_valid().to_numpy(zero_copy_only=False)
            try:
                matrix = np.stack(
                    [
                        found.field(i).filter(pa.array(hit)).cast(pa.int64()).to_numpy()
                        for i in range(len(names))
                    ],
                    axis=1,
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None  # beyond int64
        else:
            hit = pc.equal(rest, "{}").to_numpy(zero_copy_only=False)
            matrix = np.zeros((int(hit.sum()), 0), dtype=np.int64)
        if not hit[0]:
            return None  # not the text json.dumps writes
        rows = left[hit]
        names_codes[rows] = code
        starts[rows] = size + np.arange(len(rows), dtype=np.int64) * len(names)
        blocks.append(matrix.ravel())
        size += matrix.size
        todo[rows] = False
    else:
        if todo.any():
            return None
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    out = _MapColumn(0, True)
    coded.codes = names_codes.astype(coded.codes.dtype)
    out.names = coded
    ints = _ints(starts, valid)
    if ints is None:
        return None
    out.starts = ints
    out.flat = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    out.size = len(out.flat)
    return out


def _lists_from_arrow(array: Any) -> _CodedColumn | None:
    """A column of lists of strings, dictionary-encoded by pyarrow: each list
    joined (with its length) into one string, the rows of one string sharing the
    list of its first row. ``None`` when an element holds the separator."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_string(array.type.value_type):
        return None
    if len(array) == 0:
        return _CodedColumn(0, True)
    if pc.any(pc.match_substring(pc.list_flatten(array), "\x1f")).as_py():
        return None
    joined = pc.binary_join_element_wise(
        pc.cast(pc.list_value_length(array), pa.string()),
        pc.binary_join(array, "\x1f"),
        "\x1e",
    )
    encoded = pc.dictionary_encode(joined)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    first = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    valid = np.flatnonzero(indices >= 0)
    # the first row of each distinct list (reversed: the last write wins)
    first[indices[valid][::-1]] = valid[::-1]
    coded = _CodedColumn(0, True)
    codes = [coded.code(array[int(row)].as_py()) for row in first.tolist()]
    if any(c is None for c in codes):
        return None
    lookup = np.asarray([0, *codes], dtype=np.int64)
    coded.codes = lookup[indices.astype(np.int64) + 1].astype(coded.codes.dtype)
    return coded
