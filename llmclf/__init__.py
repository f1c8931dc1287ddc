"""llmclf: fine-tune causal LLMs as text classifiers with QLoRA, as a DVC pipeline."""
from . import errors

errors.install()  # stage scripts print a user error as one line, not a traceback
