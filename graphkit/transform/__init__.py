"""graphkit.transform"""
