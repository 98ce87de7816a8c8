"""graphkit.wseg.eval"""
