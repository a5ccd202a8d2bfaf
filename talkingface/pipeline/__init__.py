"""The framework core: data contracts and shared vocabularies, stage bases, hookspecs, the plugin
registry, config, the stage graph (batch and streaming), profiling and errors. No file formats,
no face analysis, no command line: those live in ``talkingface.io``, ``talkingface.face`` and
``talkingface.api`` / ``talkingface.cli``."""
