"""gate/core"""
