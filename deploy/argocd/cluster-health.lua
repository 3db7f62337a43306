-- Argo CD health check for SCS Clusters (scs.community/Cluster), see docs/gitops.md.
-- Install it as resource.customizations.health.scs.community_Cluster in argocd-cm.
-- Tested with a Lua 5.1 runtime by crates/operator/tests/gitops.rs (argocd_health_check_judges_clusters).
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kaas operator to report status"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the kaas operator to observe generation " .. tostring(generation)
  return hs
end
local ready, accepted, deleting
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "SpecAccepted" then
    accepted = c
  elseif c.type == "Deleting" then
    deleting = c
  end
end
local function text(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end
if deleting ~= nil then
  if deleting.status == "False" and deleting.reason == "DeletionProtected" then
    hs.status = "Degraded"
    hs.message = text(deleting)
    return hs
  end
  if deleting.status == "True" then
    hs.status = "Progressing"
    hs.message = "Deleting: " .. text(deleting)
    return hs
  end
end
if accepted ~= nil and accepted.status == "False" then
  -- InvalidSpec or ProviderNotFound: nothing happens until the spec is fixed.
  hs.status = "Degraded"
  hs.message = text(accepted)
  return hs
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready.reason == "Failed" then
  hs.status = "Degraded"
  hs.message = text(ready)
  return hs
end
hs.status = "Progressing"
hs.message = text(ready)
return hs
