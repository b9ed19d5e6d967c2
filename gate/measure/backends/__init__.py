"""gate/measure/backends"""
