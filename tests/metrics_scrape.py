"""Reads a process's /metrics over HTTP as Prometheus does, for tests."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: every sample by its name, as the exposition names it (``..._total``,
    ``..._count``, ``..._bucket``), with its labels."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain"), reply.headers
            text = reply.read().decode()
        self.samples = [(s.name, s.labels, s.value)
                        for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``; KeyError if none."""
        found = [value for sample, have, value in self.samples
                 if sample == name and labels.items() <= have.items()]
        if not found:
            raise KeyError(f"no sample {name} with {labels} in {sorted(self.names())}")
        return sum(found)
