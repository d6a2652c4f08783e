"""What the gateway's WebRTC relays (the camera's looks, the voice calls) share."""
