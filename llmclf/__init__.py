"""llmclf: fine-tune causal LLMs as text classifiers with QLoRA, as a DVC pipeline."""
