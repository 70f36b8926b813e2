"""A validator's epoch seeds, kept in the API node's database (docs/design.md §6.1).

The seed decides which inferences the validator must check in an epoch, and the chain holds
only its hash until the reveal. Losing it after the commit would leave the validator unable to
follow its obligations or to reveal, so a seed is written (and committed to the database)
before the MsgCommitSeed carrying its hash is queued, and it is never replaced.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite

from apinode.store import Database, ValidatorSeed
from chain.validation.sampling import SEED_BYTES


class SeedStore:
    """One validator's seeds by epoch; every method is one short transaction."""

    def __init__(self, db: Database, validator: str) -> None:
        self.db = db
        self.validator = validator

    def seed(self, epoch: int) -> bytes:
        """The epoch's seed, drawn (32 random bytes) and stored on first use.

        Insert-if-absent and read back in one transaction, so two processes sharing the
        database that race here both end up with the one seed that was stored.
        """
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        with self.db.session() as session:
            session.execute(dialect.insert(ValidatorSeed)
                            .values(validator=self.validator, epoch=epoch,
                                    seed=secrets.token_bytes(SEED_BYTES))
                            .on_conflict_do_nothing(index_elements=[ValidatorSeed.validator,
                                                                    ValidatorSeed.epoch]))
            return session.scalars(self._select(epoch)).one()

    def get(self, epoch: int) -> bytes | None:
        """The epoch's seed if one was drawn; never draws one."""
        with self.db.session() as session:
            return session.scalars(self._select(epoch)).first()

    def epochs(self, first: int, last: int) -> list[int]:
        """Epochs in [first, last] that have a seed, in order."""
        with self.db.session() as session:
            return list(session.scalars(
                select(ValidatorSeed.epoch)
                .where(ValidatorSeed.validator == self.validator,
                       ValidatorSeed.epoch.between(first, last))
                .order_by(ValidatorSeed.epoch)))

    def _select(self, epoch: int) -> Select[tuple[bytes]]:
        return select(ValidatorSeed.seed).where(ValidatorSeed.validator == self.validator,
                                                ValidatorSeed.epoch == epoch)
