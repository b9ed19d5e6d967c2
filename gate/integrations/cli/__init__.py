"""gate/integrations/cli"""
