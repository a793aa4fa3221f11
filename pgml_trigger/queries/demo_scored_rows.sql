SELECT id, mean_radius, mean_texture, worst_area, diagnosis
FROM tumors
ORDER BY id
LIMIT 5
