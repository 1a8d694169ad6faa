"""IMIL (Rao et al. 2024): mine misprediction outliers during training, have a clinician mark their
irrelevant regions, remove those and train on. The package takes plain settings; the run layer
builds its callback from the ``imil.*`` keys (``hkd.run.build.build_imil_callback``) and reads
the rest of the section in ``hkd.run.imil_setup``."""
