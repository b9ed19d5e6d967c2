"""gate/integrations"""
