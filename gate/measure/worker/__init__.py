"""gate/measure/worker"""
