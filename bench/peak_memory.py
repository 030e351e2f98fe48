"""A process's peak resident memory as Linux records it (VmHWM), with nothing but the stdlib, so
that a measured process can import it without adding to what is measured."""

from __future__ import annotations


def vmhwm_bytes(pid: int | str = "self") -> int:
    """The high-water mark of a live process's resident memory (or this process's), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kibibytes
    raise LookupError(f"/proc/{pid}/status has no VmHWM line")
