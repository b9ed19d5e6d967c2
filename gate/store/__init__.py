"""gate/store"""
