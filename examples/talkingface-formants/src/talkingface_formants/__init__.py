"""talkingface-formants: an example third-party talkingface plugin (an LPC formant encoder)."""

from talkingface_formants.encoder import FormantConfig, FormantVisemeEncoder

__version__ = "0.1.0"
__all__ = ["FormantConfig", "FormantVisemeEncoder", "__version__"]
