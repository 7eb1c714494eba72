"""Fine-tuning (``pocketlm finetune``): data loading, the Trainer recipe, atomic checkpoints.

Needs the torch extra: ``pip install 'pocketlm[torch]'``.
"""
