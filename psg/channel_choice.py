"""Which label feeds which montage slot, from labels alone: ranks, EEG sides and derivations.

Why apart from ``psg.channels``: a file's channels (``map_recording``, which also knows units and rates) and a
live device's stream labels (``recognise_labels``, used by the bridge for labels its TOML map does not name)
must choose the same way, so both call these functions; the label table itself is ``psg.channel_labels``.
"""

from __future__ import annotations

from psg.channel_labels import DERIVATIONS, EEG_SLOTS, Entry, lookup, normalise
from psg.montage import EEG_C3, EEG_C4

#: How a derived channel is named: ``"C3 - M2"`` (electrode, separator, reference), in reports and the bridge.
DERIVED = " - "


def derived_label(source: str, reference: str) -> str:
    """The name of ``source`` against ``reference`` ("C3 - M2"): the one spelling ``derived_from`` undoes."""
    return f"{source}{DERIVED}{reference}"


def derived_from(label: str) -> tuple[str, str] | None:
    """(electrode, reference) of a ``derived_label``, None for any other label."""
    source, separator, reference = label.partition(DERIVED)
    return (source, reference) if separator else None


def recognise_labels(
    labels: list[str] | tuple[str, ...], taken: set[str] | frozenset[str] = frozenset()
) -> dict[str, str]:
    """Label -> montage slot for the best label of each slot not in ``taken`` (no units or rates known).

    The live bridge uses this for device labels its TOML map does not name. A slot fed by a derivation of
    two device channels (an amplifier streaming ``C3`` and ``M2``) comes back under ``"C3 - M2"``, as a
    file's channel report names it; ``derivation_parts`` splits it.
    """
    candidates = [(label, entry, i) for i, label in enumerate(labels) if (entry := lookup(label)) is not None]
    derived = [
        (derived_label(source, ref), entry, len(labels) + k)
        for k, (source, ref, entry) in enumerate(plan_derivations(labels, candidates))
    ]
    chosen = assign_slots(without_parts(candidates, derived) + derived, set(taken))
    return {label: slot for slot, label in chosen.items()}


def without_parts(
    candidates: list[tuple[str, Entry, int]], derived: list[tuple[str, Entry, int]]
) -> list[tuple[str, Entry, int]]:
    """``candidates`` less the electrodes a derivation is built from: ``C3`` feeds C3-M2, not also the other
    EEG slot (an electrode against the amplifier's reference is the same signal again)."""
    parts = {part for label, _, _ in derived for part in derived_from(label) or ()}
    return [c for c in candidates if c[0] not in parts]


def derivation_parts(label: str, labels: list[str] | tuple[str, ...]) -> tuple[str, str] | None:
    """(electrode, reference) when ``label`` is a derivation of two of ``labels`` (``"C3 - M2"``), else None."""
    parts = None if label in labels else derived_from(label)
    return parts if parts and parts[0] in labels and parts[1] in labels else None


def plan_derivations(
    labels: list[str] | tuple[str, ...], candidates: list[tuple[str, Entry, int]]
) -> list[tuple[str, str, Entry]]:
    """(electrode label, reference label, entry) of each ``DERIVATIONS`` entry that ``labels`` allow: both
    electrodes present and no recognised candidate for that slot (and side) ranked ``unless_rank`` or better.
    Files (``map_recording``) and devices (``recognise_labels``) both plan with it."""
    by_norm = {normalise(label): label for label in labels}
    out = []
    for derivation in DERIVATIONS:
        entry = derivation.entry
        if any(
            e.slot == entry.slot and e.side == entry.side and e.rank <= derivation.unless_rank for _, e, _ in candidates
        ):
            continue
        ref = next((by_norm[normalise(r)] for r in derivation.refs if normalise(r) in by_norm), None)
        source = next((by_norm[normalise(e)] for e in derivation.electrodes if normalise(e) in by_norm), None)
        if ref is not None and source is not None:
            out.append((source, ref, entry))
    return out


def assign_slots(candidates: list[tuple[str, Entry, int]], taken: set[str]) -> dict[str, str]:
    """Slot -> label: the best-ranked candidate of each free slot; EEG by side, then the free EEG slot."""
    chosen: dict[str, str] = {}
    for label, entry, _ in sorted(candidates, key=lambda c: (c[1].rank, c[2])):
        free = next((s for s in _slots_of(entry) if s not in taken and s not in chosen), None)
        if free is not None:
            chosen[free] = label
    return chosen


def _slots_of(entry: Entry) -> list[str]:
    """The slots ``entry`` may feed, preferred first: an EEG side's own slot, then either EEG slot."""
    if entry.slot != "EEG":
        return [entry.slot]
    return ([EEG_SLOTS[entry.side]] if entry.side else []) + [EEG_C3, EEG_C4]
