"""The transfer agent's closing delivery signatures until their executors have them.

A closing delivery is signed as the developer receives the end of an output, and handed to
the executor in the background, again while the executor cannot take it for now. An agent
killed in between (the developer answered, the executor not yet told) would leave the
executor unable to finish an inference it served: no signature, no finish, the inference
expires unpaid and counts a miss against the executor. Kept here, the delivery survives the
agent's restart.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from apinode.execute_wire import Delivery
from apinode.store import Database, OwedDelivery, utc_now


class OwedDeliveries:
    """Rows of ``owed_deliveries``; each method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def owe(self, executor: str, url: str, delivery: Delivery) -> None:
        """Keeps ``delivery`` for ``executor`` (at ``url``), replacing an earlier one of the
        same inference: only the closing delivery is kept, and there is one per inference."""
        with self.db.session() as session:
            session.merge(OwedDelivery(inference_id=delivery.inference_id, executor=executor,
                                       url=url, output_tokens=delivery.output_tokens,
                                       signature=delivery.signature))

    def settle(self, inference_id: str) -> None:
        """The executor took it, refused it, or could not be reached for the agent's whole
        patience: nothing is owed any more."""
        with self.db.session() as session:
            session.execute(delete(OwedDelivery).where(
                OwedDelivery.inference_id == inference_id))

    def owed(self, max_age_s: float) -> list[tuple[str, str, Delivery]]:
        """(executor, url, delivery) of every delivery kept at most ``max_age_s`` ago, oldest
        first; older ones are dropped, since their inferences expired on chain long since."""
        cutoff = utc_now() - timedelta(seconds=max_age_s)
        with self.db.session() as session:
            session.execute(delete(OwedDelivery).where(OwedDelivery.created_at < cutoff))
            rows = session.scalars(select(OwedDelivery).order_by(OwedDelivery.created_at))
            return [(r.executor, r.url, Delivery(r.inference_id, r.output_tokens, r.signature))
                    for r in rows]
