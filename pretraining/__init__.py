"""The face backbone's distillation from a dlib teacher: research code with a package of its own.

The app and the engine (``gslora_core``) never import it; it imports the engine's model and data
code. ``python -m pretraining pretrain --help`` lists the run's knobs; checkpoints/README.md
gives the commands that made the shipped backbone. Its extra requirement (the teacher) is in
``pretraining/requirements.txt``.
"""
