-- wrk script: GET /predict/<random id in 1..rows>; rows comes from the command line.
local rows = 1
function init(args)
  rows = tonumber(args[1])
end
function request()
  return wrk.format("GET", "/predict/" .. math.random(1, rows))
end
