"""Camera check-ins: the media relay (``media``) and the privacy filter (``privacy``). docs/camera.md."""
