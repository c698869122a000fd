"""GS-LoRA engine: continual forgetting for face recognition (Zhao et al., CVPR 2024).

Importable without gradio. Modules: config, data, model, lora, losses, training, forgetting,
metrics, cli.
"""
__version__ = "0.1.0"
