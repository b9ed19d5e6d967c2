"""gate/integrations/pytest"""
