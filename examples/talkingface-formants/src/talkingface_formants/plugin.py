"""The module talkingface loads through the ``talkingface`` entry point: registers the encoder."""

from talkingface import hookimpl

from talkingface_formants.encoder import FormantVisemeEncoder


@hookimpl
def register_audio_encoders(register):
    register(FormantVisemeEncoder)
