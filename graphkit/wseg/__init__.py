"""graphkit.wseg: the 1-stage-wseg model (network, checkpoint, export) and its VOC evaluation."""
