"""graphkit.check"""
