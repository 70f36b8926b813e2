"""The benchmarks. Each ``bench/NAME.py`` runs as a script (``python bench/NAME.py``); this
package exists so that ``python -m bench.detection`` finds ``bench`` from any directory,
through the editable install, not only from the repository root."""
