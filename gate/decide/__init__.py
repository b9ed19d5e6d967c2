"""gate/decide"""
