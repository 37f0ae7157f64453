/* themes/builtin.c — the compiled-in dark theme ("default").
 *
 * Owns one static, read-only struct theme, written as designated
 * initializers by role (htop's CRT_colorSchemes) so that adding a role
 * without a style here leaves it zeroed = black on black; the test suite
 * checks that every role has a readable foreground.  themes/default.yaml
 * mirrors this table for users who want to copy and edit it.
 */
#include "config.h"

#include "themes/theme.h"

#define D THEME_COLOR_DEFAULT
#define I(n) THEME_COLOR_INDEX(n)

static const struct theme builtin_default = {
	.name = "default",
	.roles = {
		[THEME_ROLE_NORMAL] = { D, D, 0 },
		[THEME_ROLE_USER] = { 0x87afd7, D, 0 },
		[THEME_ROLE_USER_LABEL] = { 0x87afff, D, THEME_ATTR_BOLD },
		[THEME_ROLE_ASSISTANT] = { D, D, 0 },
		[THEME_ROLE_ASSISTANT_LABEL] = { 0x87d787, D, THEME_ATTR_BOLD },
		[THEME_ROLE_SYSTEM] = { 0xafafaf, D, THEME_ATTR_ITALIC },
		[THEME_ROLE_CODE] = { 0xd0d0d0, 0x262626, 0 },
		[THEME_ROLE_CODE_KEYWORD] = { 0xd787ff, 0x262626, THEME_ATTR_BOLD },
		[THEME_ROLE_CODE_STRING] = { 0xd7af87, 0x262626, 0 },
		[THEME_ROLE_CODE_COMMENT] = { 0x808080, 0x262626, THEME_ATTR_ITALIC },
		[THEME_ROLE_INLINE_CODE] = { 0xffd787, 0x303030, 0 },
		[THEME_ROLE_HEADING] = { 0xffaf5f, D, THEME_ATTR_BOLD },
		[THEME_ROLE_EMPHASIS] = { D, D, THEME_ATTR_ITALIC },
		[THEME_ROLE_STRONG] = { D, D, THEME_ATTR_BOLD },
		[THEME_ROLE_QUOTE] = { 0xa8a8a8, D, THEME_ATTR_ITALIC },
		[THEME_ROLE_BORDER] = { 0x626262, D, 0 },
		[THEME_ROLE_BORDER_FOCUS] = { 0x5fafff, D, 0 },
		[THEME_ROLE_TITLE] = { 0xffffff, D, THEME_ATTR_BOLD },
		[THEME_ROLE_SELECTION] = { 0xffffff, 0x005f87, 0 },
		[THEME_ROLE_STATUS] = { 0xd0d0d0, 0x303030, 0 },
		[THEME_ROLE_STATUS_ACCENT] = { 0x87d7ff, 0x303030, THEME_ATTR_BOLD },
		[THEME_ROLE_INPUT] = { D, D, 0 },
		[THEME_ROLE_ERROR] = { 0xffffff, 0xaf0000, THEME_ATTR_BOLD },
		[THEME_ROLE_NOTICE] = { 0x000000, 0xd7af00, 0 },
		[THEME_ROLE_DIM] = { 0x808080, D, 0 },
		[THEME_ROLE_SIDEBAR] = { 0xbcbcbc, D, 0 },
		[THEME_ROLE_SIDEBAR_ACTIVE] = { 0xffffff, D, THEME_ATTR_BOLD },
		[THEME_ROLE_DIALOG] = { 0xe4e4e4, 0x1c1c1c, 0 },
		[THEME_ROLE_KEY] = { 0xffd75f, D, THEME_ATTR_BOLD },
	},
};

#undef D
#undef I

const struct theme *theme_builtin_default(void)
{
	return &builtin_default;
}
