// Roles per project, each including the ones before it (docs/API.md).
// The UI only hints at what a role allows; the server decides, and its
// 403 message is shown next to the action.

export const ROLES = ['viewer', 'developer', 'operator', 'admin'];

export function effectiveRole(role, me) {
  if (me && me.user && me.user.is_admin) return 'admin';
  return ROLES.includes(role) ? role : 'viewer';
}

export function can(role, needed) {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}
