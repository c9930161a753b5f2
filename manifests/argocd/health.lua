-- Argo CD health of a sovereignsuite.io/SovereignSuite, from the status the operator writes
-- (operator/sovereign_suite/reconcile/pipeline.py, _finish). Argo CD does not look at the suite's children
-- for a custom resource, so this status is what the Application's health is made of.
--
-- First match wins:
--   no status, or status.observedGeneration < metadata.generation  -> Progressing (not observed yet)
--   Stalled=True or Degraded=True                                   -> Degraded (needs a person)
--   spec.paused, or Reconciling reason Paused                       -> Suspended
--   Reconciling=True                                                -> Progressing
--   Ready=True                                                      -> Healthy
--   otherwise                                                       -> Progressing, with Ready's message
-- Degraded is checked before Reconciling on purpose: the operator keeps Reconciling=True while a component is
-- Unschedulable or the API server refuses a child, and that must not read as "still rolling out".
--
-- Runs with Argo CD's default sandbox (no string library: only base, table and a safe os), so it uses
-- nothing but `..`, comparisons and ipairs.

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function describe(c)
  if c.message == nil or c.message == "" then
    return c.reason or c.type
  end
  if c.reason == nil or c.reason == "" then
    return c.message
  end
  return c.reason .. ": " .. c.message
end

local hs = {}
local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
local degraded = condition(status, "Degraded")
local reconciling = condition(status, "Reconciling")
local ready = condition(status, "Ready")

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if isTrue(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end
local paused = obj.spec ~= nil and obj.spec.paused == true
if paused or (reconciling ~= nil and reconciling.reason == "Paused") then
  hs.status = "Suspended"
  if reconciling ~= nil and reconciling.reason == "Paused" and reconciling.message ~= "" then
    hs.message = reconciling.message
  else
    hs.message = "spec.paused is true"
  end
  return hs
end
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
