"""gate/diagnose"""
