"""What every part of the pipeline shares: errors, params, atomic writes, file hashes, locks, run logs and GPUs."""
