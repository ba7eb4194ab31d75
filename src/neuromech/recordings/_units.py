"""Units at the I/O boundary: everything inside neuromech is ms, mV and nA.

Files store seconds, volts, picoamperes, ... : a loader converts once, here, with a factor from the
tables below, and records in the recording's metadata which unit it read or assumed.
"""

from __future__ import annotations

import numpy as np

# Factors that turn a value in the named unit into the internal unit (ms, mV, nA).
TIME_UNITS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3}
VOLTAGE_UNITS = {"V": 1e3, "mV": 1.0, "uV": 1e-3, "µV": 1e-3}
CURRENT_UNITS = {"A": 1e9, "mA": 1e6, "uA": 1e3, "µA": 1e3, "nA": 1.0, "pA": 1e-3, "fA": 1e-6}
_TABLES = {"time": (TIME_UNITS, "ms"), "voltage": (VOLTAGE_UNITS, "mV"), "current": (CURRENT_UNITS, "nA")}
# Spellings found in files (NWB writes words, ABF headers write symbols).
_ALIASES = {
    "seconds": "s", "second": "s", "sec": "s", "milliseconds": "ms", "msec": "ms",
    "volts": "V", "volt": "V", "v": "V", "millivolts": "mV", "mv": "mV", "microvolts": "uV",
    "amperes": "A", "amps": "A", "ampere": "A", "a": "A", "nanoamperes": "nA", "na": "nA",
    "picoamperes": "pA", "pa": "pA", "microamperes": "uA", "ua": "uA",
}


def canonical_unit(unit: str, kind: str) -> str:
    """The canonical spelling of ``unit`` for a quantity ``kind`` ('time', 'voltage', 'current').

    Raises:
        ValueError: for a unit that is not one of ``kind``'s, listing the valid ones.

    Example:
        >>> canonical_unit("volts", "voltage")
        'V'
    """
    table, _ = _TABLES[kind]
    text = str(unit).strip()
    name = text if text in table else _ALIASES.get(text.lower(), text)
    if name not in table:
        raise ValueError(
            f"unknown {kind} unit {unit!r}; expected one of {', '.join(table)} — pass the file's unit "
            f"explicitly (e.g. {kind}_unit='{next(iter(table))}')"
        )
    return name


def to_internal(values, unit: str, kind: str) -> np.ndarray:
    """``values`` in ``unit`` converted to neuromech's unit for ``kind`` (ms, mV or nA), as float64.

    Example:
        >>> float(to_internal(0.5, "pA", "current")[()])
        0.0005
    """
    table, _ = _TABLES[kind]
    return np.asarray(values, dtype=np.float64) * table[canonical_unit(unit, kind)]


def internal_unit(kind: str) -> str:
    """The internal unit of a quantity: 'ms', 'mV' or 'nA'."""
    return _TABLES[kind][1]
