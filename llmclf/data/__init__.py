"""Data: `data.source` read into text/label frames, sampled and split (the fetch, sample and split stages)."""
