/**
 * The atmospheric scattering model the physics-based restorations invert (Koschmieder; the derainers' formation
 * models in models/derain/render.py): I = J T + (1 - T) A per pixel, with T the transmission and A the global
 * atmospheric light. Planar tile buffers, as the tiled runner hands them out.
 */

/**
 * J = (I - (1 - T) A) / max(T, tMin), clamped to [0, 1]: `input` is 3 planes, `t` one plane, `a` RGB. The floor
 * keeps a near-opaque pixel from multiplying its noise by 1 / T.
 */
export function invertScattering(input: Float32Array, t: Float32Array, a: Float32Array, tMin: number): Float32Array {
  const plane = t.length;
  const out = new Float32Array(input.length);
  for (let c = 0, i = 0; c < 3; c++) {
    const ac = a[c]!;
    for (let p = 0; p < plane; p++, i++) {
      const tp = t[p]!;
      const j = (input[i]! - (1 - tp) * ac) / (tp > tMin ? tp : tMin);
      out[i] = j > 1 ? 1 : j > 0 ? j : 0;
    }
  }
  return out;
}

/**
 * A partial dehaze of T = T_streak T_veil: the veil's transmission moved a fraction `d` of the way from 1 (clear
 * air) to its estimate, T_d = T_streak (1 - d (1 - T_veil)); d = 1 is T, d = 0 leaves the veil in place.
 */
export function liftVeil(tStreak: Float32Array, tVeil: Float32Array, d: number): Float32Array {
  const out = new Float32Array(tStreak.length);
  for (let p = 0; p < out.length; p++) out[p] = tStreak[p]! * (1 - d * (1 - tVeil[p]!));
  return out;
}
