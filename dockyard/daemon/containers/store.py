"""The containers table, with an in-memory index of every record.

Every change is saved whole in one transaction; the name column's UNIQUE
constraint is the last word on name conflicts.
"""

from __future__ import annotations

import sqlite3

from dockyard.daemon.containers import names, record
from dockyard.daemon.containers.record import ContainerRecord
from dockyard.storage.metadata import Database


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_id: dict[str, ContainerRecord] = {}
        for (doc,) in db.query("SELECT doc FROM containers"):
            rec = record.decode(doc)
            self._by_id[rec.id] = rec

    def all(self) -> list[ContainerRecord]:
        return list(self._by_id.values())

    def get(self, ref: str) -> ContainerRecord:
        """By full ID, name, or unique ID prefix; NotFound "No such container: ref"."""
        if ref in self._by_id:
            return self._by_id[ref]
        return self._by_id[names.find(ref, ((r.id, r.name) for r in self._by_id.values()))]

    def has_id(self, cid: str) -> bool:
        return cid in self._by_id

    def holder_of(self, name: str) -> str | None:
        for rec in self._by_id.values():
            if rec.name == name:
                return rec.id
        return None

    def add(self, rec: ContainerRecord) -> None:
        try:
            with self._db.transaction() as cur:
                cur.execute("INSERT INTO containers (id, name, image_id, created, doc) VALUES (?, ?, ?, ?, ?)",
                            (rec.id, rec.name, rec.image_id, rec.created, record.encode(rec)))
        except sqlite3.IntegrityError:
            raise names.name_conflict(rec.name, self.holder_of(rec.name) or "") from None
        self._by_id[rec.id] = rec

    def save(self, rec: ContainerRecord, durable: bool = True) -> None:
        """``durable=False``: no fsync (see ``Database.transaction``), for states a power loss
        voids anyway (running) or that a durable commit follows at once (an auto-remove)."""
        with self._db.transaction(durable=durable) as cur:
            cur.execute("UPDATE containers SET name = ?, doc = ? WHERE id = ?",
                        (rec.name, record.encode(rec), rec.id))

    def rename(self, rec: ContainerRecord, new_name: str) -> None:
        old = rec.name
        rec.name = new_name
        try:
            self.save(rec)
        except sqlite3.IntegrityError:
            rec.name = old
            raise names.name_conflict(new_name, self.holder_of(new_name) or "") from None

    def delete(self, cid: str, durable: bool = True) -> None:
        """``durable=False``: for an auto-remove, which a start-up redoes if a power loss undoes it."""
        with self._db.transaction(durable=durable) as cur:
            cur.execute("DELETE FROM containers WHERE id = ?", (cid,))
        self._by_id.pop(cid, None)
