"""gate/integrations/github"""
