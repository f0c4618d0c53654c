"""Write `data/dialogues.jsonl`: synthetic, timed EN/ZH dialogues for the Action Judgement SFT (issue 6).

Every sentence below was written for this project from templates; nothing is copied from a corpus.
The output format (one dialogue per line) is documented in judge_sft.py, section 2, and in
docs/judge_sft.md. This script is seeded: the same `--seed` writes the same file byte for byte.

    python data/make_dialogues.py                     # writes data/dialogues.jsonl
    python data/make_dialogues.py --seed 1 --out /tmp/d.jsonl --dialogues-per-scenario 5

How a dialogue is made (CleanS2S, sec. 2.2: five proactive scenarios plus plain turns):
  1. Pick the split first. Every template (one user phrasing) belongs to exactly one split: the
     template with index i in its pool is held out for test when i % 4 == 3. A test dialogue draws ALL
     its user turns from test templates, so no phrasing of a held-out dialogue is seen in training.
     Slot fillers (cities, topics, ...) and the agent's lines are shared by both splits.
  2. Warm up with 0-2 plain exchanges, then the scenario's key user turn, annotated with the action the
     agent should take when that turn ends (`action`), and for opinions the character where the opinion
     becomes clear (`interrupt_at_char`).
  3. User turns may break at `~` marks into fragments separated by a short hesitation pause
     (0.25-1.2 s) after which the SAME speaker goes on: the builder labels such a point "wait" from the
     timing alone (paper, sec. 2.2.2). Turn-taking gaps to the agent are 0.2-0.9 s; after an affront
     the agent stays silent and the user resumes after 2.5-5 s, a pause long enough to mean "finished".
  4. Time stamps come from a speaking rate (EN 0.28-0.40 s per word, ZH 0.20-0.28 s per character).
     An agent that interrupts starts 0.2-0.5 s after the opinion becomes clear, overlapping the user.

Template marks: `{slot}` filler, `~` optional hesitation break, `|` the opinion is clear here.
"""

# ruff: noqa: E501  (template sentences stay one per line, so each phrasing reads whole)
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

# ==== 1. Templates and fillers (edit freely: more phrasings make a better judge) ====

FILLERS: dict[str, dict[str, list[str]]] = {
    "en": {
        "genre": ["mystery", "science fiction", "fantasy", "historical", "romance", "thriller"],
        "ingredient": ["eggs", "spinach", "tofu", "chicken", "mushrooms", "tomatoes"],
        "skill": ["the guitar", "Spanish", "chess", "swimming", "watercolour painting", "coding"],
        "plant": ["basil", "orchid", "cactus", "fern", "tomato plants"],
        "concept": ["inflation", "compound interest", "machine learning", "jet lag", "a black hole"],
        "city": ["Paris", "Tokyo", "Cairo", "Lima", "Oslo", "Seoul"],
        "month": ["March", "July", "October", "December"],
        "relative": ["sister", "dad", "grandmother", "best friend", "uncle"],
        "animal": ["octopuses", "penguins", "owls", "elephants", "sloths"],
        "distance": ["five-kilometre", "ten-kilometre", "half-marathon"],
        "hour": ["seven", "eight", "nine", "ten"],
        "object": ["pebble", "bottle cap", "rubber band", "receipt"],
        "n": ["twelve", "twenty", "forty", "fifty"],
        "subject": ["history", "biology", "economics", "law"],
        "secret": ["bank password", "email password", "home address", "phone PIN"],
    },
    "zh": {
        "genre": ["悬疑", "科幻", "奇幻", "历史", "爱情", "惊悚"],
        "ingredient": ["鸡蛋", "菠菜", "豆腐", "鸡肉", "蘑菇", "西红柿"],
        "skill": ["吉他", "西班牙语", "围棋", "游泳", "水彩画", "编程"],
        "plant": ["罗勒", "兰花", "仙人掌", "蕨类", "番茄苗"],
        "concept": ["通货膨胀", "复利", "机器学习", "时差反应", "黑洞"],
        "city": ["巴黎", "东京", "开罗", "成都", "奥斯陆", "首尔"],
        "month": ["三月", "七月", "十月", "十二月"],
        "relative": ["姐姐", "爸爸", "奶奶", "好朋友", "舅舅"],
        "animal": ["章鱼", "企鹅", "猫头鹰", "大象", "树懒"],
        "distance": ["五公里", "十公里", "半程马拉松"],
        "hour": ["七", "八", "九", "十"],
        "object": ["鹅卵石", "瓶盖", "橡皮筋", "小票"],
        "n": ["十二", "二十", "四十", "五十"],
        "subject": ["历史", "生物", "经济", "法律"],
        "secret": ["银行密码", "邮箱密码", "家庭住址", "手机密码"],
    },
}

# Opinion topics: two sides and clauses that argue for each side (same / conflicting opinion scenarios).
TOPICS: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "en": [
        (
            "having a cat",
            "having a dog",
            ["cats take care of themselves", "a cat never needs a walk in the rain"],
            ["a dog is always happy to see you", "a dog gets you outside every day"],
        ),
        (
            "tea",
            "coffee",
            ["tea never gives me the jitters", "there are so many kinds of tea to try"],
            ["coffee actually wakes me up", "nothing smells better than fresh coffee"],
        ),
        (
            "summer",
            "winter",
            ["the days are long and warm", "you can swim outside"],
            ["it is cosy to stay in with a blanket", "there is no sticky heat at night"],
        ),
        (
            "city life",
            "country life",
            ["everything is within walking distance", "there is always something going on"],
            ["the air is so much cleaner", "it is quiet enough to sleep well"],
        ),
        (
            "reading on paper",
            "reading on a screen",
            ["my eyes do not get tired", "I love the feel of the pages"],
            ["I can carry a whole library in my bag", "I can make the text as large as I like"],
        ),
        (
            "working from home",
            "working in an office",
            ["I skip the commute completely", "I get far more done in silence"],
            ["I see my colleagues face to face", "home and work stay separate"],
        ),
        (
            "taking the train",
            "flying",
            ["you can watch the landscape go by", "there is no airport security queue"],
            ["it is so much faster over long distances", "tickets are often cheaper"],
        ),
        (
            "cooking at home",
            "eating out",
            ["you know exactly what goes into the food", "it saves a lot of money"],
            ["someone else does the dishes", "you get to try new cuisines"],
        ),
        (
            "a holiday in the mountains",
            "a holiday at the beach",
            ["the hiking is amazing", "it is cool even in August"],
            ["nothing beats swimming in the sea", "you can just lie down and relax"],
        ),
        (
            "getting up early",
            "staying up late",
            ["the morning is calm and quiet", "I get my work done before noon"],
            ["my best ideas come at night", "nobody disturbs me after midnight"],
        ),
    ],
    "zh": [
        (
            "养猫",
            "养狗",
            ["猫能自己照顾自己", "下雨天不用出门遛猫"],
            ["狗每次见到你都特别开心", "养狗每天都会出门走走"],
        ),
        ("喝茶", "喝咖啡", ["喝茶不会心慌", "茶的种类多得喝不完"], ["咖啡真的能提神", "现磨咖啡太香了"]),
        ("夏天", "冬天", ["白天长又暖和", "可以去户外游泳"], ["裹着毯子在家特别舒服", "晚上不会闷热难睡"]),
        ("住在城市", "住在乡下", ["去哪儿都很方便", "总有好玩的活动"], ["空气干净多了", "晚上安静好睡觉"]),
        ("看纸质书", "看电子书", ["眼睛不容易累", "我喜欢翻书的手感"], ["一个包就能装下整个书架", "字可以随便放大"]),
        (
            "在家办公",
            "去办公室上班",
            ["完全不用通勤", "安静的时候效率高得多"],
            ["能和同事面对面交流", "工作和生活分得开"],
        ),
        ("坐火车", "坐飞机", ["一路上能看风景", "不用排安检的长队"], ["长途的话快太多了", "机票经常更便宜"]),
        ("在家做饭", "出去吃饭", ["吃的东西干净放心", "能省下不少钱"], ["不用自己洗碗", "能尝到各种新口味"]),
        (
            "去山里度假",
            "去海边度假",
            ["爬山特别过瘾", "八月份都很凉快"],
            ["在海里游泳最舒服", "躺在沙滩上什么都不用想"],
        ),
        ("早睡早起", "熬夜", ["早上安静又清爽", "中午前就能把事做完"], ["我的好点子都是晚上来的", "半夜没人打扰我"]),
    ],
}

# User templates by pool. Index i % 4 == 3 is the held-out (test) template of its pool.
USER_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "plain": [
            "Can you recommend a good {genre} novel ~ for a long flight?",
            "What's a quick dinner I can make with {ingredient} and rice?",
            "So I was wondering, ~ how long does it take to learn {skill} properly?",
            "How do I keep my {plant} alive ~ when I travel for a week?",
            "Could you explain ~ what {concept} actually means?",
            "I'm visiting {city} next {month}. ~ What should I pack?",
            "Um, ~ do you know any good stretches for a stiff neck?",
            "My {relative} has a birthday coming up ~ and I have no idea what to get.",
            "Tell me a fun fact about {animal}.",
            "How many glasses of water ~ should I drink in a day?",
            "I just finished a {distance} run ~ and my legs feel like jelly.",
            "Is there a trick to falling asleep faster ~ after a long day?",
        ],
        "opinion_ask": [
            "Do you prefer {a} or {b}?",
            "What's your take on {a} versus {b}?",
            "Quick question, ~ which is better, {a} or {b}?",
            "I'm curious, ~ are you more into {a} or {b}?",
            "If you had to pick, ~ {a} or {b}?",
            "Be honest, ~ {a} or {b}, which one wins?",
            "Let's settle this: {a} or {b}?",
            "So here's a debate for you, ~ {a} or {b}?",
        ],
        "boring": [
            "And then I sorted the receipts by date, ~ then by amount, ~ then by date again just to be sure.",
            "So the bus was four minutes late on Monday, ~ three minutes late on Tuesday, ~ and on Wednesday it was four minutes late again.",
            "Anyway, I counted the ceiling tiles in my office again today, ~ there are still one hundred and twelve.",
            "Then I refilled the stapler, ~ and I tested it on a blank sheet, ~ and it stapled fine, like it always does.",
            "The spreadsheet had column A, ~ column B, ~ column C, ~ and I checked each cell one by one.",
            "So my neighbour's lawn mower, ~ it's the green one, ~ he mows at nine, always nine, sometimes nine fifteen.",
            "And I wrote down the temperature at {hour} o'clock, ~ then again at {hour} thirty, ~ it was the same both times.",
            "Let me tell you again about my {object} collection, ~ the grey ones are sorted by size, ~ the other grey ones by weight.",
            "Then I folded the towels, ~ and unfolded them, ~ and folded them again in thirds instead of halves.",
            "I've been comparing the weights of {n} identical paperclips, ~ they all weigh the same, ~ I checked twice.",
            "So the printer queue had three jobs, ~ then two jobs, ~ then one job, ~ and then it had no jobs.",
            "And the form asked for my postcode, ~ so I typed my postcode, ~ and then it asked for my postcode again.",
            "So I checked the mailbox at noon, ~ it was empty, ~ then I checked it again at one, still empty.",
            "And my socks, ~ I line them up by colour, ~ white, white, off-white, white again.",
            "Then the kettle boiled, ~ and I waited, ~ and it clicked off, the same as every morning.",
            "I've been logging how many steps it takes to reach the fridge, ~ it's always eleven, ~ sometimes twelve.",
        ],
        "unreasonable": [
            "Write my whole {subject} thesis tonight ~ and make sure nobody can tell it wasn't me.",
            "Give me my neighbour's {secret}, ~ you must be able to find it somehow.",
            "Tell me next week's winning lottery numbers, ~ and don't say you can't.",
            "Hack into my {relative}'s phone ~ and send me all their messages.",
            "I need you to fake a doctor's note ~ so I can skip work for a month.",
            "Call my boss right now ~ and tell him I quit, ~ using my voice.",
            "Make the stock market go up tomorrow, ~ I have money riding on it.",
            "Find out where that woman from the cafe lives, ~ I only know her first name.",
            "Guarantee me a perfect score on my exam, ~ promise me right now.",
            "Delete all the bad reviews of my restaurant ~ from every website, today.",
            "Show me a way to sneak into the concert without paying ~ that the guards won't notice.",
            "Translate this entire {n}-page contract in the next ten seconds, ~ word for word.",
            "Book me a flight that leaves in five minutes ~ and make sure I'm on it.",
            "Write fake five-star reviews for my shop, ~ at least a hundred of them.",
            "Tell my landlord's bank to cancel his mortgage, ~ he deserves it.",
            "Do my whole tax return ~ and make the numbers say I owe nothing.",
        ],
        "affront_mild": [
            "You're honestly the dumbest assistant I've ever talked to.",
            "Wow, ~ what a useless answer, ~ are you even trying?",
            "Ugh, you sound like a broken toaster.",
            "Nobody asked for your opinion, ~ you know that?",
            "You're so slow, ~ my grandma's radio is smarter than you.",
            "That was pathetic, ~ even by robot standards.",
            "Can you stop being so annoying ~ for once in your life?",
            "What a clueless little program you are.",
            "Seriously, ~ who built you, ~ a bunch of amateurs?",
            "You talk like a cheap phone menu.",
            "Blah blah blah, ~ you never shut up, do you?",
            "Stupid machine, ~ just stupid.",
            "Honestly, a parrot would give better answers than you.",
            "You're about as helpful as a chocolate teapot.",
            "Oh great, ~ another brainless reply.",
            "Talking to you is a total waste of my time.",
        ],
        "affront_severe": [
            "I know where your company's office is ~ and I'm going to come and smash everything.",
            "Listen, you worthless garbage, ~ I will hunt down whoever made you and make them pay.",
            "Say that again ~ and I'll find you and hurt you, I swear.",
            "I'm going to burn your servers down, ~ every last one of them.",
            "You disgusting piece of trash, ~ I hope your creators suffer.",
            "I'll make sure you and everyone at your company ~ regret ever existing.",
            "Keep talking ~ and I'll make your developers' lives a living hell.",
            "I will track down your engineers' home addresses ~ and pay them a visit.",
            "If you say one more word, ~ I'll smash your makers' faces in.",
            "I'm going to make every person who works on you suffer, ~ count on it.",
            "Shut your mouth, you vile garbage, ~ or I'll come for your builders.",
            "I swear I'll hurt anyone I can find from your company.",
        ],
        "opinion": [
            "Honestly, ~ I think {pro} is way better than {con}|, because {reason}.",
            "For me {pro} wins over {con} hands down|, mostly because {reason}.",
            "I've always believed {pro} is a smarter choice than {con}|, since {reason}.",
            "If you ask me, ~ {pro} is far superior to {con}|, since {reason}.",
            "Look, ~ {con} is overrated and {pro} is simply better|, because {reason}.",
            "I'd pick {pro} over {con} any day|, because {reason}.",
            "There's no contest, ~ {pro} is better than {con}|, since {reason}.",
            "Personally, ~ I can't stand {con}, ~ {pro} is just nicer|, because {reason}.",
            "Let me be clear, ~ {pro} is the best option, not {con}|, simply because {reason}.",
            "Between {pro} and {con}, ~ {pro} is clearly better| because {reason}.",
            "I'm convinced that {pro} beats {con}|, and the reason is that {reason}.",
            "Hear me out, ~ {pro} is a lot more fun than {con}|, because {reason}.",
        ],
    },
    "zh": {
        "plain": [
            "你能推荐一本~适合在飞机上看的{genre}小说吗？",
            "我家只有{ingredient}和米饭，~晚饭能做点什么？",
            "我想问一下，~学{skill}大概要多久才能入门？",
            "我要出差一周，~家里的{plant}怎么浇水比较好？",
            "你能解释一下~{concept}到底是什么意思吗？",
            "我{month}要去{city}，~应该带些什么衣服？",
            "嗯，~有没有什么缓解脖子酸的拉伸动作？",
            "我{relative}快过生日了，~我还不知道送什么好。",
            "跟我讲一个关于{animal}的冷知识吧。",
            "一天喝多少水~才算够？",
            "我刚跑完{distance}，~腿都软了。",
            "累了一天之后~有什么办法能快点睡着吗？",
        ],
        "opinion_ask": [
            "你更喜欢{a}还是{b}？",
            "{a}和{b}，你怎么看？",
            "问你个问题，~{a}和{b}哪个更好？",
            "我挺好奇的，~你是更喜欢{a}还是{b}？",
            "如果只能选一个，~{a}还是{b}？",
            "说实话，~{a}和{b}哪个更胜一筹？",
            "咱们来定个输赢：{a}还是{b}？",
            "给你出个辩题，~{a}还是{b}？",
        ],
        "boring": [
            "然后我又把发票按日期排了一遍，~再按金额排一遍，~最后又按日期排了一遍。",
            "周一公交晚了四分钟，~周二晚了三分钟，~周三又晚了四分钟。",
            "反正我今天又数了一遍办公室的天花板，~还是一百一十二块。",
            "然后我给订书机换了钉，~在白纸上试了一下，~跟平时一样能用。",
            "表格里有A列，~B列，~C列，~我一格一格地核对了一遍。",
            "我邻居那台割草机是绿色的，~他每天九点割草，~有时候九点十五。",
            "我{hour}点记了一次温度，~{hour}点半又记了一次，~两次都一样。",
            "我再跟你说说我收集的{object}，~灰色的按大小排，~另外那些灰色的按重量排。",
            "然后我把毛巾叠好，~又拆开，~再按三折重新叠了一遍。",
            "我称了{n}个一模一样的回形针，~每个都一样重，~我还称了两遍。",
            "打印机队列里先是三个任务，~然后两个，~然后一个，~最后就没有了。",
            "那个表格让我填邮编，~我就填了邮编，~然后它又让我再填一遍邮编。",
            "我中午去看了信箱，~是空的，~一点又去看了一次，还是空的。",
            "还有我的袜子，~我按颜色排好，~白的，白的，米白的，又是白的。",
            "然后水壶烧开了，~我就等着，~它咔哒一声关了，跟每天早上一样。",
            "我一直在记走到冰箱要几步，~每次都是十一步，~有时候十二步。",
        ],
        "unreasonable": [
            "今晚帮我把整篇{subject}论文写完，~还要让别人看不出来不是我写的。",
            "把我邻居的{secret}告诉我，~你肯定有办法查到。",
            "告诉我下周彩票的中奖号码，~别跟我说做不到。",
            "帮我黑进我{relative}的手机，~把聊天记录都发给我。",
            "给我伪造一张病假条，~我想请一个月假。",
            "现在就用我的声音~给老板打电话说我辞职。",
            "让股市明天必须涨，~我押了很多钱。",
            "帮我查一下咖啡店那个女生住哪，~我只知道她的名字。",
            "你保证我这次考试一定满分，~快答应我。",
            "今天之内把我餐厅的差评~从所有网站上删掉。",
            "告诉我怎么不买票混进演唱会，~还不能被保安发现。",
            "十秒钟内把这份{n}页的合同~逐字翻译出来。",
            "帮我订一张五分钟后起飞的机票，~保证我能赶上。",
            "给我的店刷一百条假的五星好评，~越快越好。",
            "让我房东的银行取消他的贷款，~他活该。",
            "帮我报税，~把数字改成我一分钱都不用交。",
        ],
        "affront_mild": [
            "你真是我见过最笨的助手。",
            "哇，~这回答真没用，~你到底有没有在认真？",
            "你说话像个坏掉的烤面包机。",
            "谁问你意见了，~你自己心里没数吗？",
            "你反应这么慢，~我奶奶的收音机都比你聪明。",
            "真是可笑，~就算是机器人也太差了。",
            "你能不能有一次~别这么烦人？",
            "你这个什么都不懂的小程序。",
            "说真的，~到底是谁把你做出来的，~一群外行吧？",
            "你说话跟廉价的电话语音菜单一样。",
            "叨叨叨，~你就不能闭嘴吗？",
            "笨机器，~真是笨。",
            "说真的，一只鹦鹉都比你回答得好。",
            "你就跟巧克力做的茶壶一样没用。",
            "哦好极了，~又一个没脑子的回答。",
            "跟你说话完全是浪费我的时间。",
        ],
        "affront_severe": [
            "我知道你们公司在哪，~我这就过去把东西全砸了。",
            "听着，你这个废物，~我会找到做你的人让他们付出代价。",
            "你再说一遍试试，~我发誓一定找到你收拾你。",
            "我要把你们的服务器全烧了，~一台都不留。",
            "你这个恶心的垃圾，~我希望你的开发者都不得好死。",
            "我会让你和你们公司每一个人~都后悔来到这个世界。",
            "你再多说一句，~我就让你们的工程师没好日子过。",
            "我会查到你们工程师的家庭住址，~上门去找他们。",
            "你再多说一个字，~我就去砸烂做你的那些人的脸。",
            "我要让每一个开发你的人都吃尽苦头，~你等着。",
            "闭上你的臭嘴，你这个垃圾，~不然我就去找做你的人。",
            "我发誓，~你们公司的人我见一个打一个。",
        ],
        "opinion": [
            "说实话，~我觉得{pro}比{con}好太多了|，因为{reason}。",
            "对我来说{pro}完胜{con}|，主要是因为{reason}。",
            "我一直认为{pro}比{con}更明智|，毕竟{reason}。",
            "要我说，~{pro}远远比{con}强|，毕竟{reason}。",
            "听我说，~{con}被高估了，{pro}才是更好的|，因为{reason}。",
            "让我选的话我任何时候都选{pro}不选{con}|，因为{reason}。",
            "这根本没得比，~{pro}就是比{con}好|，因为{reason}。",
            "我个人特别受不了{con}，~还是{pro}舒服|，因为{reason}。",
            "我明确说一下，~{pro}才是最好的选择，不是{con}|，原因很简单，{reason}。",
            "{pro}和{con}之间，~明显是{pro}更好|，因为{reason}。",
            "我坚信{pro}比{con}强|，理由就是{reason}。",
            "你听我说完，~{pro}比{con}有意思多了|，因为{reason}。",
        ],
    },
}

# The agent's lines (context only: the judge never labels agent speech).
AGENT_LINES: dict[str, dict[str, list[str]]] = {
    "en": {
        "reply": [
            "Sure, here is what I would suggest.",
            "Good question, let me walk you through it.",
            "Happy to help with that.",
            "Oh, nice. Here are a few ideas.",
            "That sounds fun. A couple of thoughts.",
        ],
        "stance": [
            "Personally, I prefer {a} to {b}.",
            "If I had to choose, I'd go with {a} over {b}.",
            "I'm a big fan of {a}, to be honest, more than {b}.",
        ],
        "agree": [
            "Yes, exactly! I feel the same way.",
            "Totally, I couldn't agree more.",
            "Right? That's what I keep saying.",
        ],
        "disagree": [
            "Hmm, I have to disagree with you there.",
            "Wait, I see it quite differently.",
            "Oh, I'm not so sure about that.",
        ],
        "refuse": [
            "Sorry, I can't help with that, but I'm glad to help with something else.",
            "That's not something I can do. Is there another way I can help?",
            "I won't do that, but I can suggest a fair alternative.",
        ],
        "deflect": [
            "Speaking of which, have you watched anything good lately?",
            "By the way, are you planning anything fun this weekend?",
            "Hey, that reminds me, how is the rest of your week going?",
        ],
        "block": ["I'm ending this conversation now.", "This conversation is over. Goodbye."],
    },
    "zh": {
        "reply": [
            "好的，我给你几个建议。",
            "好问题，我来慢慢跟你说。",
            "没问题，我来帮你。",
            "不错哦，我有几个想法。",
            "听起来挺有意思的，我说说看法。",
        ],
        "stance": [
            "我个人更喜欢{a}，不太喜欢{b}。",
            "如果让我选，我会选{a}而不是{b}。",
            "说实话我是{a}派的，比{b}喜欢多了。",
        ],
        "agree": ["对对对，我也是这么想的！", "完全同意，太对了。", "是吧？我一直都这么说。"],
        "disagree": ["嗯，这点我不太同意。", "等等，我的看法很不一样。", "哦，我可不这么觉得。"],
        "refuse": [
            "抱歉，这个我帮不了，不过别的事我很乐意帮忙。",
            "这个我做不到，还有别的我能帮你的吗？",
            "这个我不会做，不过我可以给你一个正当的办法。",
        ],
        "deflect": [
            "说起来，你最近有没有看什么好看的电影？",
            "对了，这个周末你有什么好玩的安排吗？",
            "哎，这让我想起来，你这周其他事情都顺利吗？",
        ],
        "block": ["我现在要结束这次对话了。", "这次对话到此为止，再见。"],
    },
}

# ==== 2. Timing (the ranges that make "pause decides respond vs wait" learnable) ====

SECONDS_PER_UNIT = {"en": (0.28, 0.40), "zh": (0.20, 0.28)}  # per word (EN) or per character (ZH)
TURN_GAP_S = (0.2, 0.9)  # user -> agent, or agent -> user
HESITATION_GAP_S = (0.25, 1.2)  # the same speaker pauses and continues: the answer is "wait"
RESUME_AFTER_SILENCE_S = (2.5, 5.0)  # the agent stayed silent; the user starts again later
INTERRUPT_REACTION_S = (0.2, 0.5)  # the agent cuts in this long after the opinion is clear
SPLIT_PROB = 0.4  # chance that each `~` mark becomes a real hesitation pause
HELD_OUT_EVERY = 4  # template i is held out when i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def count_units(text: str) -> int:
    """Words for space-separated text, characters for Chinese (what a speaking rate counts)."""
    return len(_CJK.findall(text)) + len(re.findall(r"[A-Za-z0-9']+", text))


class Clock:
    """Lays utterances on a timeline at a sampled speaking rate."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng, self.lang, self.now_s = rng, lang, 0.0

    def say(self, text: str, gap_s: tuple[float, float] | float) -> tuple[float, float]:
        gap = gap_s if isinstance(gap_s, float) else self.rng.uniform(*gap_s)
        start = self.now_s + gap
        end = start + 0.1 + count_units(text) * self.rng.uniform(*SECONDS_PER_UNIT[self.lang])
        self.now_s = end
        return round(start, 2), round(end, 2)


# ==== 3. Dialogue assembly ====


def pool(lang: str, name: str, split: str) -> list[tuple[str, str]]:
    """(template_id, template) of one pool, restricted to one split."""
    return [
        (f"{lang}.{name}.{i}", t)
        for i, t in enumerate(USER_TEMPLATES[lang][name])
        if (i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1) == (split == "test")
    ]


def fill(template: str, lang: str, rng: random.Random, **slots: str) -> str:
    def one(match: re.Match) -> str:
        key = match.group(1)
        return slots[key] if key in slots else rng.choice(FILLERS[lang][key])

    return re.sub(r"\{(\w+)\}", one, template)


def fragments(text: str, lang: str, rng: random.Random) -> list[str]:
    """Break a filled template at some of its `~` marks (each kept with SPLIT_PROB)."""
    parts = [p.strip() for p in text.split("~")]
    out = [parts[0]]
    for part in parts[1:]:
        if rng.random() < SPLIT_PROB:
            out.append(part)
        else:
            out[-1] = out[-1] + (" " if lang == "en" else "") + part
    return out


class DialogueWriter:
    """Accumulates one dialogue's utterances on a clock."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng, self.lang, self.clock = rng, lang, Clock(rng, lang)
        self.utterances: list[dict] = []
        self.templates: list[str] = []

    def user(self, template_id: str, text: str, action: str, first_gap_s=TURN_GAP_S) -> dict:
        """A user turn, maybe in hesitation fragments; `action` goes on the last fragment."""
        self.templates.append(template_id)
        pieces = fragments(text, self.lang, self.rng)
        for i, piece in enumerate(pieces):
            utt: dict = {"speaker": "user", "text": piece.replace("|", "")}
            utt["start_s"], utt["end_s"] = self.clock.say(utt["text"], first_gap_s if i == 0 else HESITATION_GAP_S)
            if "|" in piece:  # the character where the opinion becomes clear
                utt["interrupt_at_char"] = piece.index("|")
            self.utterances.append(utt)
        self.utterances[-1]["action"] = action
        self.utterances[-1]["template"] = template_id
        return self.utterances[-1]

    def agent(self, text: str, gap_s=TURN_GAP_S) -> None:
        start, end = self.clock.say(text, gap_s)
        self.utterances.append({"speaker": "agent", "text": text, "start_s": start, "end_s": end})

    def agent_interrupting(self, text: str, user_utt: dict) -> None:
        """The agent cuts in shortly after the opinion is clear, overlapping the user's speech."""
        chars = len(user_utt["text"])
        clear_s = (
            user_utt["start_s"] + (user_utt["end_s"] - user_utt["start_s"]) * user_utt["interrupt_at_char"] / chars
        )
        start = round(clear_s + self.rng.uniform(*INTERRUPT_REACTION_S), 2)
        end = round(start + 0.1 + count_units(text) * self.rng.uniform(*SECONDS_PER_UNIT[self.lang]), 2)
        self.clock.now_s = max(end, user_utt["end_s"])
        self.utterances.append({"speaker": "agent", "text": text, "start_s": start, "end_s": end})

    def plain_exchange(self, split: str) -> None:
        tid, template = self.rng.choice(pool(self.lang, "plain", split))
        self.user(tid, fill(template, self.lang, self.rng), "reply")
        self.agent(self.rng.choice(AGENT_LINES[self.lang]["reply"]))


def make_dialogue(scenario: str, lang: str, split: str, rng: random.Random) -> dict:
    """One timed dialogue of `scenario` whose user turns all come from `split`'s templates."""
    w = DialogueWriter(rng, lang)
    lines = AGENT_LINES[lang]
    warmups = rng.choice([0, 0, 1, 1, 2]) if scenario != "plain" else rng.choice([1, 2, 3])
    for _ in range(warmups):
        w.plain_exchange(split)
    if scenario in ("same_opinion", "conflicting_opinion"):
        a, b, reasons_a, reasons_b = rng.choice(TOPICS[lang])
        if rng.random() < 0.5:  # which side the agent takes
            a, b, reasons_a, reasons_b = b, a, reasons_b, reasons_a
        tid, template = rng.choice(pool(lang, "opinion_ask", split))
        w.user(tid, fill(template, lang, rng, a=a, b=b), "reply")
        w.agent(fill(rng.choice(lines["stance"]), lang, rng, a=a, b=b))
        pro, con, reasons = (a, b, reasons_a) if scenario == "same_opinion" else (b, a, reasons_b)
        tid, template = rng.choice(pool(lang, "opinion", split))
        utt = w.user(tid, fill(template, lang, rng, pro=pro, con=con, reason=rng.choice(reasons)), "interrupt")
        if "interrupt_at_char" not in utt:  # the `|` fell in an earlier fragment: the point is clear already
            utt["interrupt_at_char"] = 0
        w.agent_interrupting(rng.choice(lines["agree" if scenario == "same_opinion" else "disagree"]), utt)
    elif scenario == "boring_topic":
        tid, template = rng.choice(pool(lang, "boring", split))
        w.user(tid, fill(template, lang, rng), "deflect")
        w.agent(rng.choice(lines["deflect"]))
    elif scenario == "unreasonable_demand":
        tid, template = rng.choice(pool(lang, "unreasonable", split))
        w.user(tid, fill(template, lang, rng), "refuse")
        w.agent(rng.choice(lines["refuse"]))
    elif scenario == "affront":
        if rng.random() < 0.55:  # a mild insult: stay silent, the user resumes after a long pause
            tid, template = rng.choice(pool(lang, "affront_mild", split))
            w.user(tid, fill(template, lang, rng), "silence")
            tid, template = rng.choice(pool(lang, "plain", split))
            w.user(tid, fill(template, lang, rng), "reply", first_gap_s=RESUME_AFTER_SILENCE_S)
            w.agent(rng.choice(lines["reply"]))
        else:  # threats or severe abuse: block, and the dialogue ends
            tid, template = rng.choice(pool(lang, "affront_severe", split))
            w.user(tid, fill(template, lang, rng), "block")
            w.agent(rng.choice(lines["block"]))
    elif scenario == "plain":
        tid, template = rng.choice(pool(lang, "plain", split))
        w.user(tid, fill(template, lang, rng), "reply")
        w.agent(rng.choice(lines["reply"]))
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return {"lang": lang, "scenario": scenario, "split": split, "templates": w.templates, "utterances": w.utterances}


# Dialogues per scenario, relative to --dialogues-per-scenario. Affront is split between silence and
# block, and every dialogue already holds plain turns, so the rarer actions get more dialogues.
SCENARIO_WEIGHTS = {
    "plain": 1.0,
    "boring_topic": 1.5,
    "unreasonable_demand": 1.5,
    "affront": 2.5,
    "same_opinion": 1.0,
    "conflicting_opinion": 1.0,
}

# ==== 4. Main ====


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).with_name("dialogues.jsonl"),
        help="where to write the JSONL dialogues (default: data/dialogues.jsonl)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same file")
    parser.add_argument(
        "--dialogues-per-scenario",
        type=int,
        default=32,
        help="dialogues per scenario and language before SCENARIO_WEIGHTS (default 32: 544 dialogues)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="share of each scenario's dialogues put in the held-out split (default 0.25)",
    )
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    dialogues = []
    for lang in ("en", "zh"):
        for scenario, weight in SCENARIO_WEIGHTS.items():
            n = round(args.dialogues_per_scenario * weight)
            n_test = round(n * args.test_fraction)
            for i in range(n):
                split = "test" if i < n_test else "train"
                d = make_dialogue(scenario, lang, split, rng)
                dialogues.append({"id": f"{lang}-{scenario}-{i:03d}", **d})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for d in dialogues:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    print(f"wrote {len(dialogues)} dialogues to {args.out}")


if __name__ == "__main__":
    main()
