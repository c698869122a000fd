"""GS-LoRA Forgetting Studio: ``python app.py`` serves the app (also what a Space runs).

Host and port follow gradio's environment variables (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT);
the engine is ``gslora_core``, the page is ``demo``; this file only wires them.
"""
from demo.ui import QUEUE_CONCURRENCY, build_demo, launch_kwargs
from gslora_core.config import StudioConfig

config = StudioConfig()
demo = build_demo(config)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY).launch(**launch_kwargs(config))
